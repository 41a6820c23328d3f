"""Starts a `labelgate serve` process on a free loopback port and waits until it is SERVING.

Used by `make demo`, the benchmarks and the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from labelgate.v1 import labelgate_pb2_grpc

STARTUP_TIMEOUT_S = 180


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    metrics_port: int
    log_path: Path
    credentials: grpc.ChannelCredentials | None = None  # for a server started with --tls-cert
    startup_deadline: float = 0.0  # time.monotonic() by which it must report SERVING

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self, **options) -> grpc.Channel:
        if self.credentials is not None:
            return grpc.secure_channel(self.address, self.credentials, options=list(options.items()))
        return grpc.insecure_channel(self.address, options=list(options.items()))

    def stub(self) -> labelgate_pb2_grpc.LabelgateStub:
        return labelgate_pb2_grpc.LabelgateStub(self.channel())

    def health(self, service: str = "") -> int:
        with self.channel() as channel:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

    def metric(self, name: str, **labels) -> float:
        """The value of one Prometheus sample (0 if absent)."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                sample, value = line.rsplit(" ", 1)
                found = sample[len(name):].strip("{}")
                if ",".join(sorted(found.split(","))) == wanted or (not wanted and not found):
                    return float(value)
        return 0.0

    def wait_until_serving(self) -> None:
        while True:
            try:
                if self.health() == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if self.process.poll() is not None or time.monotonic() > self.startup_deadline:
                self.process.kill()
                raise RuntimeError(f"server never reported SERVING:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def start_server(workdir: Path, demo_weights: Path | None, *extra: str,
                 credentials: grpc.ChannelCredentials | None = None, wait_until_serving: bool = True) -> ServerProcess:
    """Serves `demo_weights` (or whatever `extra` flags say) on 127.0.0.1; logs go to workdir/server.log.
    `credentials` are the client's for a TLS server (the health check and `channel()` use them).
    Returns once it reports SERVING, or once it listens (`wait_until_serving=False`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / "ports.json"
    port_file.unlink(missing_ok=True)  # a stale file from an earlier run would point at a dead port
    log_path = workdir / "server.log"
    command = [
        sys.executable, "-m", "labelgate.cli", "serve",
        *(["--demo-weights", str(demo_weights)] if demo_weights else []), "--host", "127.0.0.1", "--port", "0",
        "--metrics-port", "0", "--port-file", str(port_file), "--max-batch-delay-ms", "2", *extra,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    ports = json.loads(port_file.read_text())
    server = ServerProcess(process, ports["port"], ports["metrics_port"], log_path, credentials, deadline)
    if wait_until_serving:
        server.wait_until_serving()
    return server
