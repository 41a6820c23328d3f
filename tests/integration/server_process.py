"""The integration tests start servers with the same launcher as `make demo` and the benchmarks."""

from pathlib import Path

from labelgate.server.launcher import ServerProcess, start_server

__all__ = ["ServerProcess", "restart_on_same_port", "start_server"]


def restart_on_same_port(gone: ServerProcess, workdir: Path, demo_weights: Path | None, *extra: str) -> ServerProcess:
    """A new server on the port of `gone` (a server that has exited), so that clients of the old
    one reach it at the same address; returns once it is SERVING."""
    return start_server(workdir, demo_weights, *extra, "--port", str(gone.port))  # the last --port wins
