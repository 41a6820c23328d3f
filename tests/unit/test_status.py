"""Errors -> gRPC status codes. (RpcInterceptor, which applies them to every call: test_interceptor.py.)"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from labelgate.core.errors import (
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    NotReady,
    Overloaded,
    Unauthenticated,
    Unsupported,
)
from labelgate.server.status import MAX_MESSAGE_BYTES, status_for

MAPPED = [
    (InvalidInput("bad box"), grpc.StatusCode.INVALID_ARGUMENT, "bad box"),
    (NotFound("unknown image_id"), grpc.StatusCode.NOT_FOUND, "unknown image_id"),
    (NotReady("still loading"), grpc.StatusCode.UNAVAILABLE, "still loading"),
    (Overloaded("queue is full"), grpc.StatusCode.RESOURCE_EXHAUSTED, "queue is full"),
    (Unsupported("no detector"), grpc.StatusCode.UNIMPLEMENTED, "no detector"),
    (DeadlineExceeded("deadline passed"), grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed"),
    (asyncio.TimeoutError("timed out"), grpc.StatusCode.DEADLINE_EXCEEDED, "timed out"),
    (Unauthenticated("missing bearer token"), grpc.StatusCode.UNAUTHENTICATED, "missing bearer token"),
    # An empty message still says something: the error's class name.
    (InvalidInput(), grpc.StatusCode.INVALID_ARGUMENT, "InvalidInput"),
]


@pytest.mark.parametrize(
    "error, code, message", MAPPED, ids=[f"{type(e).__name__}({str(e)!r})" for e, _, _ in MAPPED]
)
def test_domain_errors_map_to_their_status_code_with_their_message(error, code, message):
    assert status_for(error) == (code, message)


@pytest.mark.parametrize(
    "error",
    [RuntimeError("secret detail"), KeyError("secret detail"), ValueError("secret"), ZeroDivisionError(), Exception("x")],
    ids=lambda e: type(e).__name__,
)
def test_any_other_error_is_internal_without_a_message(error):
    assert status_for(error) == (grpc.StatusCode.INTERNAL, None)


@pytest.mark.parametrize("character", ["x", "é", "猫", "🐈"])
def test_a_long_message_is_cut_within_the_bound_at_a_character_boundary(character):
    text = "unknown model " + character * 100_000

    code, message = status_for(NotFound(text))

    assert code == grpc.StatusCode.NOT_FOUND
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    assert message.endswith("(message cut)")
    assert text.startswith(message[: -len(" ... (message cut)")])
    assert len(message) > MAX_MESSAGE_BYTES // 8  # as much as fits, not a stub


def test_a_message_at_the_bound_is_kept_whole():
    text = "y" * MAX_MESSAGE_BYTES
    assert status_for(InvalidInput(text)) == (grpc.StatusCode.INVALID_ARGUMENT, text)
