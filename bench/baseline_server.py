"""The usual way SAM 2 is served to annotation tools, as the baseline to beat.

It does what the common Label Studio SAM 2 ML backend does on every request: read the task's image
file, decode it, run `SAM2ImagePredictor.set_image` and `predict(multimask_output=True)`, keep
the best-scoring mask, trace its largest contour into a simplified polygon, and answer in JSON over
HTTP. Nothing is cached between requests.

    python -m labelgate.bench.baseline_server --sam2-config CFG --sam2-checkpoint PT --port-file F
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

STARTUP_TIMEOUT_S = 180


class BaselineSegmenter:
    def __init__(self, config: str, checkpoint: str, overrides: list[str], device: str):
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        model = build_sam2(config, checkpoint, device=device, hydra_overrides_extra=overrides)
        self.predictor = SAM2ImagePredictor(model)
        # The predictor hard-codes the feature sizes of 1024 px models; follow the model's size.
        side = model.image_size // 4
        self.predictor._bb_feat_sizes = [(side, side), (side // 2, side // 2), (side // 4, side // 4)]

    def predict(self, request: dict) -> dict:
        image = np.array(Image.open(request["image_path"]).convert("RGB"))
        height, width = image.shape[:2]
        self.predictor.set_image(image)
        masks, scores, _ = self.predictor.predict(
            point_coords=np.array(request["points"], dtype=np.float32),
            point_labels=np.array(request["labels"], dtype=np.float32),
            multimask_output=True,
        )
        best = int(np.argmax(scores))
        return {"results": _polygon_results(masks[best].astype(np.uint8), float(scores[best]), width, height)}


def _polygon_results(mask: np.ndarray, score: float, width: int, height: int) -> list[dict]:
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    largest = max(contours, key=cv2.contourArea)
    approx = cv2.approxPolyDP(largest, 0.005 * cv2.arcLength(largest, True), True)
    points = [[float(x) / width * 100, float(y) / height * 100] for x, y in approx.reshape(-1, 2)]
    return [{"type": "polygonlabels", "original_width": width, "original_height": height,
             "value": {"points": points}, "score": score}]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._reply(200, {"status": "UP"})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._reply(200, self.server.segmenter.predict(request))

    def _reply(self, code: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam2-config", required=True)
    parser.add_argument("--sam2-checkpoint", required=True)
    parser.add_argument("--sam2-override", action="append", default=[])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    server.segmenter = BaselineSegmenter(args.sam2_config, args.sam2_checkpoint, args.sam2_override, args.device)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    part = Path(args.port_file + ".part")
    part.write_text(json.dumps({"port": server.server_address[1]}))
    part.replace(args.port_file)
    server.serve_forever()
    server.server_close()
    return 0


@dataclass
class BaselineProcess:
    process: subprocess.Popen
    port: int

    def segment(self, image_path: Path, point: tuple[float, float]) -> dict:
        body = json.dumps({"image_path": str(image_path), "points": [list(point)], "labels": [1]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/predict", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def start_baseline(workdir: Path, sam2_config: str, checkpoint: Path, overrides: tuple[str, ...],
                   device: str = "cpu") -> BaselineProcess:
    """Starts the baseline on a free loopback port; returns once it has loaded the model."""
    workdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / "port.json"
    port_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "labelgate.bench.baseline_server", "--sam2-config", sam2_config,
               "--sam2-checkpoint", str(checkpoint), "--device", device, "--port-file", str(port_file)]
    for override in overrides:
        command += ["--sam2-override", override]
    log_path = workdir / "baseline.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"baseline server did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.1)
    return BaselineProcess(process, json.loads(port_file.read_text())["port"])


if __name__ == "__main__":
    sys.exit(main())
