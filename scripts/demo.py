"""`make demo`: offline end to end. Demo weights, a real server, a sample image segmented by the CLI.

The weights are random, so the masks are meaningless; everything else is the real path.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from labelgate.models.demo import ensure_demo_weights
from labelgate.server.launcher import start_server


def sample_image(path: Path) -> None:
    image = Image.new("RGB", (640, 480), (90, 140, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 330, 640, 480), fill=(70, 120, 60))
    draw.ellipse((380, 60, 480, 160), fill=(250, 220, 90))
    draw.rectangle((120, 220, 300, 360), fill=(180, 60, 50))
    draw.polygon([(110, 220), (210, 140), (310, 220)], fill=(120, 40, 40))
    image.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, default=Path("weights/demo"), help="demo weights directory (written if missing)")
    parser.add_argument("--out", type=Path, default=Path("overlay.png"), help="overlay PNG to write")
    args = parser.parse_args()

    print(f"demo weights in {args.weights} (random: masks are meaningless, the pipeline is real)")
    ensure_demo_weights(args.weights)
    workdir = Path(tempfile.mkdtemp(prefix="labelgate-demo-"))
    image = workdir / "sample.png"
    sample_image(image)
    print("starting the server ...")
    server = start_server(workdir, args.weights)
    try:
        print(f"server SERVING on {server.address}; log: {server.log_path}")
        cli = [sys.executable, "-m", "labelgate.cli"]
        subprocess.run([*cli, "models", "--server", server.address], check=True)
        subprocess.run(
            [*cli, "segment", str(image), "--point", "210,290", "--box", "110,140,310,360", "--out", str(args.out),
             "--server", server.address],
            check=True,
        )
        subprocess.run([*cli, "detect", str(image), "house . sun .", "--server", server.address], check=True)
        print(f"overlay written to {args.out}")
    finally:
        code = server.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
