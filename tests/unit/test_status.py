"""Errors -> gRPC status codes, and the servicer's `_rpc` wrapper: server faults stay in the log."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from labelgate.server.errors import (
    DeadlineExceeded,
    InvalidInput,
    NotFound,
    NotReady,
    Overloaded,
    Unauthenticated,
    Unsupported,
)
from labelgate.server.metrics import Metrics
from labelgate.server.servicer import LabelgateServicer
from labelgate.server.status import status_for
from labelgate.v1 import labelgate_pb2 as pb

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


class Aborted(Exception):
    pass


class FakeContext:
    """What `_rpc` uses of a grpc.aio.ServicerContext: abort records and raises, like the real one."""

    def __init__(self):
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def time_remaining(self):
        return None

    async def abort(self, code, message):
        self.aborted = (code, message)
        raise Aborted(message)


class ExplodingService:
    def __init__(self):
        self.calls = 0

    async def embed(self, image, model="", deadline=None):
        self.calls += 1
        raise RuntimeError("secret detail")


class RefusingService:
    async def embed(self, image, model="", deadline=None):
        raise Overloaded("the encode queue is full (1 requests waiting); retry with backoff")


def requests_counted(servicer: LabelgateServicer, method: str, code: str) -> float:
    value = servicer.metrics.registry.get_sample_value("labelgate_requests_total", {"method": method, "code": code})
    return value or 0.0


async def test_server_faults_reach_the_caller_as_internal_with_a_request_id_only(caplog):
    servicer = LabelgateServicer(Metrics())
    servicer.service = ExplodingService()
    context = FakeContext()

    with caplog.at_level(logging.ERROR, logger="labelgate.server.servicer"):
        with pytest.raises(Aborted):
            await servicer.Embed(pb.EmbedRequest(image=pb.Image(data=b"png")), context)

    code, message = context.aborted
    assert code == grpc.StatusCode.INTERNAL
    assert "request id" in message
    assert "secret detail" not in message
    assert servicer.service.calls == 1
    assert requests_counted(servicer, "Embed", "INTERNAL") == 1
    assert requests_counted(servicer, "Embed", "OK") == 0
    # The details are in the server log, under the request id the caller got.
    request_id = message.rsplit("request id ", 1)[1].rstrip(")")
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info and "secret detail" in str(logged[0].exc_info[1])


async def test_domain_errors_pass_their_message_through_the_wrapper():
    servicer = LabelgateServicer(Metrics())
    servicer.service = RefusingService()
    context = FakeContext()

    with pytest.raises(Aborted):
        await servicer.Embed(pb.EmbedRequest(image=pb.Image(data=b"png")), context)

    assert context.aborted == (grpc.StatusCode.RESOURCE_EXHAUSTED, "the encode queue is full (1 requests waiting); retry with backoff")
    assert requests_counted(servicer, "Embed", "RESOURCE_EXHAUSTED") == 1


async def test_a_server_still_loading_answers_unavailable():
    servicer = LabelgateServicer(Metrics())
    assert servicer.service is None
    context = FakeContext()

    with pytest.raises(Aborted):
        await servicer.Embed(pb.EmbedRequest(image=pb.Image(data=b"png")), context)

    code, message = context.aborted
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "still loading" in message
    assert requests_counted(servicer, "Embed", "UNAVAILABLE") == 1


async def test_invalid_mask_format_is_invalid_argument_before_the_service_is_called():
    servicer = LabelgateServicer(Metrics())
    servicer.service = ExplodingService()
    context = FakeContext()
    request = pb.SegmentRequest(image=pb.Image(data=b"png"), points=[pb.Point(x=1, y=1)], formats=[7])

    with pytest.raises(Aborted):
        await servicer.Segment(request, context)

    code, message = context.aborted
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown mask format 7" in message
    assert requests_counted(servicer, "Segment", "INVALID_ARGUMENT") == 1


class SlowService:
    """An embed that runs until the test lets it finish."""

    def __init__(self):
        self.release = asyncio.Event()

    async def embed(self, image, model, deadline):
        await self.release.wait()
        raise RuntimeError("done")


async def test_drained_waits_for_rpcs_in_flight():
    servicer = LabelgateServicer(Metrics())
    servicer.service = SlowService()
    assert await servicer.drained(0.01)  # nothing running

    call = asyncio.create_task(servicer.Embed(pb.EmbedRequest(image=pb.Image(data=b"x")), FakeContext()))
    await asyncio.sleep(0.01)
    assert not await servicer.drained(0.05)

    servicer.service.release.set()
    assert await servicer.drained(1.0)
    with pytest.raises(Aborted):
        await call
