"""A real Label Studio server and the labelgate ML backend, both run from the venv that
`make label-studio-env` builds (.build/label-studio: `pip install label-studio` plus
clients/label_studio), on free loopback ports. Its Python also decodes brush masks with Label
Studio's own codec (label_studio_brush_decode.py), which this venv does not have."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".build" / "label-studio" / "bin"
STARTUP_TIMEOUT_S = 240  # the first start migrates a fresh database: ~40 s on 2 busy cores


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_venv() -> None:
    if not (VENV_BIN / "label-studio").exists():
        raise RuntimeError(f"{VENV_BIN.parent} is missing: run `make label-studio-env` (make test does)")


class ApiError(RuntimeError):
    pass


@dataclass
class HttpService:
    process: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def wait_healthy(self, path: str = "/health") -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.url} exited with {self.process.returncode}:\n{self.log()[-5000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.url}{path} never answered:\n{self.log()[-5000:]}")

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode()


@dataclass
class LabelStudio(HttpService):
    token: str = ""  # the admin's legacy token

    def api(self, method: str, path: str, body=None, *, params: dict | None = None, files: dict | None = None):
        """One call of Label Studio's REST API as the admin; the decoded JSON answer."""
        url = self.url + path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        headers = {"Authorization": f"Token {self.token}"}
        data = None
        if files:
            boundary = uuid.uuid4().hex
            data = b"".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
                for name, content in files.items()
            ) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raise ApiError(f"{method} {path}: HTTP {error.code}: {error.read()[:2000]!r}") from None


def start_label_studio(workdir: Path, local_files_root: Path) -> LabelStudio:
    """`label-studio start` on a free loopback port with an admin whose legacy token is known.
    Loopback ML backends and webhooks are allowed (Label Studio blocks them by default), and
    Local Storage may serve files under `local_files_root`."""
    check_venv()
    port, token = free_port(), uuid.uuid4().hex
    env = dict(
        os.environ,
        SSRF_PROTECTION_ENABLED="false",
        ML_BLOCK_LOCAL_IP="false",
        LOCAL_FILES_SERVING_ENABLED="true",
        LOCAL_FILES_DOCUMENT_ROOT=str(local_files_root),
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
    )
    command = [
        str(VENV_BIN / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(workdir / "data"), "--username", "admin@example.com", "--password", "labelgate-test",
        "--user-token", token, "--enable-legacy-api-token",
    ]
    log_path = workdir / "label-studio.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                   stdin=subprocess.DEVNULL)
    return LabelStudio(process, f"http://127.0.0.1:{port}", log_path, token)


def start_backend(workdir: Path, labelgate_address: str, label_studio_url: str, api_key: str,
                  *flags: str) -> HttpService:
    """The labelgate ML backend (`python -m labelgate.label_studio`) on a free loopback port, with
    any further command-line `flags`."""
    check_venv()
    port = free_port()
    env = dict(os.environ, LABEL_STUDIO_URL=label_studio_url, LABEL_STUDIO_API_KEY=api_key)
    command = [str(VENV_BIN / "python"), "-m", "labelgate.label_studio", "--port", str(port),
               "--labelgate", labelgate_address, "--log-level", "DEBUG", *flags]
    log_path = workdir / "backend.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    backend = HttpService(process, f"http://127.0.0.1:{port}", log_path)
    backend.wait_healthy()
    return backend


def decode_brushes(regions: list[dict]) -> list[np.ndarray]:
    """The masks of `brushlabels` regions, decoded by label_studio_sdk.converter.brush."""
    check_venv()
    payload = json.dumps([{"rle": r["value"]["rle"], "height": r["original_height"], "width": r["original_width"]}
                          for r in regions])
    decoded = subprocess.run([str(VENV_BIN / "python"), str(Path(__file__).with_name("label_studio_brush_decode.py"))],
                             input=payload.encode(), capture_output=True, check=True, timeout=120)
    with np.load(io.BytesIO(decoded.stdout)) as masks:
        return [masks[f"mask{index}"] for index in range(len(regions))]
