"""The integration tests start servers with the same launcher as `make demo` and the benchmarks."""

from labelgate.server.launcher import ServerProcess, start_server

__all__ = ["ServerProcess", "start_server"]
