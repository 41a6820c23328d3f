"""RpcInterceptor on a real in-process grpc.aio server (loopback, port 0): every Labelgate call,
refused ones included, gets its status code, is counted and is drained on shutdown; server faults
stay in the log."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from labelgate.core.errors import Overloaded
from labelgate.server.interceptor import RpcInterceptor
from labelgate.server.metrics import Metrics
from labelgate.server.security import BearerTokenInterceptor
from labelgate.server.servicer import LabelgateServicer
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc

SERVICE = "labelgate.v1.Labelgate"
TOKEN = "s3cret"
AUTHORIZED = (("authorization", f"Bearer {TOKEN}"),)
EMBED = pb.EmbedRequest(image=pb.Image(data=b"png"))


class Serving:
    def __init__(self, server: grpc.aio.Server, rpcs: RpcInterceptor, servicer: LabelgateServicer, address: str):
        self.server, self.rpcs, self.servicer, self.address = server, rpcs, servicer, address
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = labelgate_pb2_grpc.LabelgateStub(self.channel)

    def counted(self, method: str, code: str) -> float:
        registry = self.rpcs.metrics.registry
        return registry.get_sample_value("labelgate_requests_total", {"method": method, "code": code}) or 0.0


@asynccontextmanager
async def serving(service=None, servicer: LabelgateServicer | None = None):
    """The app's interceptor order: RpcInterceptor, then the bearer-token check."""
    rpcs = RpcInterceptor(Metrics(), SERVICE)
    server = grpc.aio.server(interceptors=[rpcs, BearerTokenInterceptor(TOKEN, SERVICE)])
    servicer = servicer or LabelgateServicer()
    servicer.service = service
    labelgate_pb2_grpc.add_LabelgateServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    running = Serving(server, rpcs, servicer, f"127.0.0.1:{port}")
    try:
        yield running
    finally:
        await running.channel.close()
        await server.stop(None)


class ExplodingService:
    def __init__(self):
        self.calls = 0

    async def embed(self, image, model="", deadline=None):
        self.calls += 1
        raise RuntimeError("secret detail")


class RefusingService:
    async def embed(self, image, model="", deadline=None):
        raise Overloaded("the encode queue is full (1 requests waiting); retry with backoff")


class SlowService:
    """An embed that runs until the test lets it finish."""

    def __init__(self):
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def embed(self, image, model, deadline):
        self.started.set()
        await self.release.wait()
        raise RuntimeError("done")


@pytest.mark.parametrize("metadata, says", [((("authorization", "Bearer nope"),), "wrong bearer token"),
                                            ((), "missing 'authorization")])
async def test_a_refused_call_is_counted_as_unauthenticated_and_never_reaches_the_service(metadata, says):
    async with serving(ExplodingService()) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.Embed(EMBED, metadata=metadata, timeout=10)

        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED and says in error.value.details()
        assert TOKEN not in error.value.details()
        assert running.servicer.service.calls == 0
        assert running.counted("Embed", "UNAUTHENTICATED") == 1
        assert running.rpcs.metrics.registry.get_sample_value("labelgate_request_seconds_count", {"method": "Embed"}) == 1


async def test_server_faults_reach_the_caller_as_internal_with_a_request_id_only(caplog):
    async with serving(ExplodingService()) as running:
        with caplog.at_level(logging.ERROR, logger="labelgate.server.interceptor"):
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await running.stub.Embed(EMBED, metadata=AUTHORIZED, timeout=10)

        code, message = error.value.code(), error.value.details()
        assert code == grpc.StatusCode.INTERNAL and "request id" in message and "secret detail" not in message
        assert running.servicer.service.calls == 1
        assert (running.counted("Embed", "INTERNAL"), running.counted("Embed", "OK")) == (1, 0)
    # The details are in the server log, under the request id the caller got.
    request_id = message.rsplit("request id ", 1)[1].rstrip(")")
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info and "secret detail" in str(logged[0].exc_info[1])


async def test_domain_errors_pass_their_message_through():
    async with serving(RefusingService()) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.Embed(EMBED, metadata=AUTHORIZED, timeout=10)

        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.value.details() == "the encode queue is full (1 requests waiting); retry with backoff"
        assert running.counted("Embed", "RESOURCE_EXHAUSTED") == 1


async def test_a_server_still_loading_answers_unavailable():
    async with serving(None) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.ListModels(pb.ListModelsRequest(), metadata=AUTHORIZED, timeout=10)

        assert error.value.code() == grpc.StatusCode.UNAVAILABLE and "still loading" in error.value.details()
        assert running.counted("ListModels", "UNAVAILABLE") == 1


class AbortingServicer(LabelgateServicer):
    async def ListModels(self, request, context):
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")


async def test_a_handler_that_aborts_by_itself_is_counted_with_its_code():
    async with serving(None, AbortingServicer()) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.ListModels(pb.ListModelsRequest(), metadata=AUTHORIZED, timeout=10)

        assert (error.value.code(), error.value.details()) == (grpc.StatusCode.PERMISSION_DENIED, "not for you")
        assert running.counted("ListModels", "PERMISSION_DENIED") == 1


async def test_drained_waits_for_labelgate_rpcs_in_flight_but_not_for_health_watchers():
    service = SlowService()
    async with serving(service) as running:
        watch = health_pb2_grpc.HealthStub(running.channel).Watch(health_pb2.HealthCheckRequest(service=""))
        await watch.read()  # a long-lived health stream is open
        assert await running.rpcs.drained(0.01)

        call = asyncio.ensure_future(running.stub.Embed(EMBED, metadata=AUTHORIZED, timeout=30))
        await service.started.wait()
        assert not await running.rpcs.drained(0.05)

        service.release.set()
        assert await running.rpcs.drained(10)
        with pytest.raises(grpc.aio.AioRpcError):
            await call
        watch.cancel()
