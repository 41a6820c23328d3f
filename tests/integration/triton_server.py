"""A real `tritonserver` on a loopback port: the binary and python backend bundled in the
nvidia-pytriton wheel, installed by `make triton-env` into .build/triton-venv (no GPU needed).

The python backend stub embeds the Python whose `python3` comes first on PATH: with the venv's
bin first, model.py imports numpy and onnxruntime from the venv. The stub links
libpython3.X.so, found through LD_LIBRARY_PATH = that Python's LIBDIR (the system's libpython,
if any, belongs to another Python and fails at model load).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRITON_ENV = Path(os.environ.get("LABELGATE_TRITON_ENV", REPO_ROOT / ".build" / "triton-venv"))
STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _venv_python_facts() -> dict:
    python = TRITON_ENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"no Triton environment at {TRITON_ENV}: run `make triton-env`")
    # find_spec, not import: the wheel is installed without its Python API's dependencies.
    code = (
        "import importlib.util, json, sys, sysconfig;"
        "print(json.dumps({'version': f'{sys.version_info[0]}.{sys.version_info[1]}',"
        " 'libdir': sysconfig.get_config_var('LIBDIR'),"
        " 'pytriton': importlib.util.find_spec('pytriton').submodule_search_locations[0]}))"
    )
    return json.loads(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout)


def _backend_directory(workdir: Path, facts: dict) -> Path:
    """Triton's --backend-directory: the wheel's python backend plus the stub for the venv's Python."""
    dist = Path(facts["pytriton"]) / "tritonserver"
    python_backend = workdir / "backends" / "python"
    python_backend.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": dist / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": dist / "backends" / "python" / "triton_python_backend_utils.py",
        "triton_python_backend_stub": dist / "python_backend_stubs" / facts["version"] / "triton_python_backend_stub",
    }
    for name, target in links.items():
        link = python_backend / name
        if not link.exists():
            link.symlink_to(target)
    return python_backend.parent


@dataclass
class TritonServer:
    repository: Path
    workdir: Path
    grpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "tritonserver.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> "TritonServer":
        """Starts tritonserver (gRPC only, loopback) and waits until every model is ready."""
        facts = _venv_python_facts()
        binary = Path(facts["pytriton"]) / "tritonserver" / "bin" / "tritonserver"
        command = [
            str(binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={_backend_directory(self.workdir, facts)}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--allow-http=false",
            "--allow-metrics=false",
            "--exit-timeout-secs=5",
        ]
        env = dict(
            os.environ,
            PATH=f"{TRITON_ENV / 'bin'}:{os.environ.get('PATH', '')}",
            LD_LIBRARY_PATH=":".join(filter(None, [facts["libdir"], os.environ.get("LD_LIBRARY_PATH", "")])),
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import tritonclient.grpc as triton

        client = triton.InferenceServerClient(self.url)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"tritonserver exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if client.is_server_ready():
                        return
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tritonserver not ready after {STARTUP_TIMEOUT_S} s:\n{self.log()}")
                time.sleep(0.3)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def statistics(self, model: str) -> dict:
        """Triton's statistics of `model` since the server started (JSON form)."""
        import tritonclient.grpc as triton

        client = triton.InferenceServerClient(self.url)
        try:
            return client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        finally:
            client.close()

    def batch_sizes(self, model: str) -> dict[int, int]:
        """Executions per batch size."""
        stats = self.statistics(model)
        return {int(entry["batch_size"]): int(entry["compute_infer"]["count"]) for entry in stats.get("batch_stats", [])}

    def inference_count(self, model: str) -> int:
        """Rows inferred (a batched execution counts each of its rows)."""
        return int(self.statistics(model).get("inference_count", 0))

    def settled_inference_count(self, model: str, timeout_s: float = 10) -> int:
        """`inference_count` once it stops moving: Triton records an inference just after it has
        answered it, so a count read right after a reply can still be one short."""
        deadline = time.monotonic() + timeout_s
        count = self.inference_count(model)
        while time.monotonic() < deadline:
            time.sleep(0.2)
            again = self.inference_count(model)
            if again == count:
                return count
            count = again
        raise RuntimeError(f"Triton's inference count of {model} kept changing for {timeout_s} s")


def main() -> None:
    """`python tests/integration/triton_server.py REPOSITORY [--port 8001]`: serve a repository on the
    CPU with the bundled tritonserver until Ctrl-C (the offline path of docs/triton.md)."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("repository", type=Path)
    parser.add_argument("--port", type=int, default=8001, help="gRPC port on 127.0.0.1 (default: 8001)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        server = TritonServer(args.repository.resolve(), Path(workdir), grpc_port=args.port).start()
        print(f"Triton serving {args.repository} at {server.url} (log: {server.log_path}); Ctrl-C stops it", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


if __name__ == "__main__":
    main()
