"""The one place where errors become gRPC status codes."""

from __future__ import annotations

import asyncio

import grpc

from labelgate.server.errors import (
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    NotReady,
    Overloaded,
    Unauthenticated,
    Unsupported,
)

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (NotReady, grpc.StatusCode.UNAVAILABLE),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unsupported, grpc.StatusCode.UNIMPLEMENTED),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (asyncio.TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
)

INTERNAL_MESSAGE = "internal error: the server logged the details (request id {request_id})"


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str | None]:
    """(code, message); the message is None where it must not reach the caller (server faults)."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code, str(error) or kind.__name__
    return grpc.StatusCode.INTERNAL, None
