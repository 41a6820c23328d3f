"""The cross-cutting work of every Labelgate RPC, in one place: errors -> status codes, request
metrics, logging of server faults, and the count of calls in flight that shutdown drains.

It must come first in the server's interceptor list (outermost), so that it also sees what the
interceptors after it answer by themselves: a call the bearer-token check refuses is counted
with code UNAUTHENTICATED like any other. Health and reflection calls pass through untouched
(a health Watch stream would otherwise hold up the drain).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import grpc
from google.protobuf.message import DecodeError

from labelgate.core.errors import InvalidInput
from labelgate.server.metrics import Metrics
from labelgate.server.status import INTERNAL_MESSAGE, status_for

log = logging.getLogger(__name__)


class RpcInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics, service: str):
        self.metrics = metrics
        self._prefix = f"/{service}/"
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()

    async def drained(self, timeout: float) -> bool:
        """Waits until no RPC is running; False if some still are after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(self._prefix):
            return handler
        if handler.unary_stream is not None:  # Propagate: a stream of responses
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method[len(self._prefix):], handler.unary_stream, handler.request_deserializer),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_unary is None:
            return handler
        # The request arrives as bytes and is parsed in _run: grpc would answer a malformed message
        # with UNKNOWN, uncounted; it is the caller's INVALID_ARGUMENT.
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(method[len(self._prefix):], handler.unary_unary, handler.request_deserializer),
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, name: str, behavior, deserialize):
        async def run(raw: bytes, context: grpc.aio.ServicerContext):
            self._in_flight += 1
            self._drained.clear()
            try:
                return await self._run(name, behavior, deserialize, raw, context)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._drained.set()

        return run

    def _wrap_stream(self, name: str, behavior, deserialize):
        """As `_wrap`, for a handler that yields its responses: each is written as it comes, and an
        error after some of them still ends the stream with its mapped status."""

        async def write_each(request, context: grpc.aio.ServicerContext) -> None:
            async for response in behavior(request, context):
                await context.write(response)

        return self._wrap(name, write_each, deserialize)

    async def _run(self, name: str, behavior, deserialize, raw: bytes, context: grpc.aio.ServicerContext):
        started = time.perf_counter()
        code, message = grpc.StatusCode.OK, None
        try:
            return await behavior(_parsed(deserialize, raw), context)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:  # a handler that set its status itself
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as error:
            code, message = status_for(error)
            if message is None:
                request_id = uuid.uuid4().hex[:12]
                log.exception("%s failed (request id %s)", name, request_id)
                message = INTERNAL_MESSAGE.format(request_id=request_id)
            else:
                log.info("%s -> %s: %s", name, code.name, message)
        finally:
            self.metrics.requests.labels(name, code.name).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - started)
        await context.abort(code, message)


def _parsed(deserialize, raw: bytes):
    try:
        return deserialize(raw) if deserialize else raw
    except DecodeError as error:
        raise InvalidInput(f"the request is not a valid protobuf message for this method: {error}") from None
