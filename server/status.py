"""The one place where errors become gRPC status codes."""

from __future__ import annotations

import asyncio

import grpc

from labelgate.core.errors import (
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
# The details travel in a trailer (gRPC clients refuse trailers over 8 KiB by default, and
# percent-encoding can triple non-ASCII bytes) and go into a log line.
MAX_MESSAGE_BYTES = 1000
_CUT = " ... (message cut)"


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str | None]:
    """(code, message); the message is None where it must not reach the caller (server faults)."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code, bounded(str(error) or kind.__name__)
    return grpc.StatusCode.INTERNAL, None


def bounded(message: str) -> str:
    """`message` if its UTF-8 is at most MAX_MESSAGE_BYTES, else its start and a note, within that."""
    encoded = message.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return message
    return encoded[: MAX_MESSAGE_BYTES - len(_CUT)].decode(errors="ignore") + _CUT
