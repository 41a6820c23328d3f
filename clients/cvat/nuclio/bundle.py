"""Puts the wheels each nuclio function installs (labelgate-client and labelgate-cvat) into its
wheels/ folder, which nuctl copies into the image with the rest of the function folder.

    make cvat-nuclio                                  # = python clients/cvat/nuclio/bundle.py
    python clients/cvat/nuclio/bundle.py --into DIR   # copies of the function folders, wheels included
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECTS = (HERE.parents[1] / "python", HERE.parent)  # clients/python, clients/cvat


def function_dirs() -> list[Path]:
    return sorted(path for path in HERE.iterdir() if (path / "function.yaml").is_file())


def build_wheels(out: Path) -> list[Path]:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), *map(str, PROJECTS)],
        check=True,
    )
    return sorted(out.glob("*.whl"))


def bundle(into: Path | None = None) -> list[Path]:
    """The function folders, each with wheels/ holding freshly built wheels."""
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        wheels = build_wheels(Path(tmp))
        for function in function_dirs():
            target = function if into is None else into / function.name
            if into is not None:
                shutil.copytree(function, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("wheels", "__pycache__"))
            shutil.rmtree(target / "wheels", ignore_errors=True)
            (target / "wheels").mkdir(parents=True)
            for wheel in wheels:
                shutil.copy2(wheel, target / "wheels")
            targets.append(target)
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--into", type=Path, help="write copies of the function folders here instead")
    args = parser.parse_args()
    for target in bundle(args.into):
        print(f"{target}: " + ", ".join(wheel.name for wheel in sorted((target / "wheels").iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
