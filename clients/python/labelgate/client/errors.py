"""The one exception type the client raises for a failed RPC."""

from __future__ import annotations

import grpc

# Phrases gRPC core puts in an UNAVAILABLE status it raised itself because no connection could
# be made (the server's own UNAVAILABLE statuses, e.g. "models are still loading", carry none).
_CONNECT_FAILURES = (
    "failed to connect",
    "connection refused",
    "dns resolution failed",
    "errors resolving",
    "name resolution",
    "connections to all backends failing",
    "no route to host",
    "network is unreachable",
)


class LabelgateClientError(Exception):
    """A failed RPC: `code` is the grpc.StatusCode, `details` the server's (or gRPC's) message."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str = ""):
        self.code = code
        self.details = details
        self.method = method
        super().__init__(f"{code.name}: {details}")

    @property
    def unreachable(self) -> bool:
        """True when no connection to the server could be made at all (nothing listening, bad
        host name, network down), as opposed to the server answering with an error."""
        lowered = self.details.lower()
        return self.code == grpc.StatusCode.UNAVAILABLE and any(phrase in lowered for phrase in _CONNECT_FAILURES)

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, method: str = "") -> "LabelgateClientError":
        code = error.code() if callable(getattr(error, "code", None)) else None
        details = error.details() if callable(getattr(error, "details", None)) else None
        return cls(code or grpc.StatusCode.UNKNOWN, details or str(error), method)
