"""Wires settings, models, caches, batchers, the servicer, health and reflection into one server."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from labelgate.models import kinds
from labelgate.models.backend import Backend
from labelgate.server.cache import ByteLRUCache
from labelgate.server.grpc_logs import quiet_unsent_answers
from labelgate.server.interceptor import RpcInterceptor
from labelgate.server.metrics import Metrics
from labelgate.server.readiness import ReadinessMonitor
from labelgate.server.refinement import mask_logits_cache
from labelgate.server.security import interceptors, server_credentials
from labelgate.server.model_loading import cache_bytes_by_model, load_context, load_model, model_specs
from labelgate.server.model_runtime import build_runtime
from labelgate.server.service import LabelgateService
from labelgate.server.servicer import LabelgateServicer
from labelgate.server.settings import Settings
from labelgate.server.validation import Limits
from labelgate.server.video_service import VideoService
from labelgate.server.video_sessions import SessionLimits
from labelgate.v1 import labelgate_pb2, labelgate_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = labelgate_pb2.DESCRIPTOR.services_by_name["Labelgate"].full_name
_HEALTH_NAMES = ("", SERVICE_NAME)
_RESPONSE_FLUSH_S = 0.5


def build_service(settings: Settings, metrics: Metrics, specs) -> LabelgateService:
    """The service, expecting `specs`; each model joins it once loaded (`LabelgateService.serve`)."""
    images = ByteLRUCache("images", settings.image_cache_bytes, lambda image: len(image.data), metrics.cache)
    limits = Limits(max_points=settings.max_points, max_boxes=settings.max_boxes, max_image_pixels=settings.max_image_pixels)
    expected = [(spec.name, kinds.get(spec.kind).capabilities) for spec in specs]
    refinable = mask_logits_cache(settings.refine_cache_bytes, metrics.cache)
    return LabelgateService(images, limits, metrics, expected, refinable)


class App:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = Metrics()
        self.rpcs = RpcInterceptor(self.metrics, SERVICE_NAME)
        self.servicer = LabelgateServicer()
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.metrics_server = None
        self.port = 0
        self.metrics_port = -1
        self._stopping = asyncio.Event()
        self.readiness: ReadinessMonitor | None = None

    async def start(self) -> None:
        """Listens at once (health NOT_SERVING), loads and warms the models, then reports SERVING."""
        quiet_unsent_answers()
        options = [
            ("grpc.max_receive_message_length", self.settings.max_message_bytes),
            ("grpc.max_send_message_length", self.settings.max_message_bytes),
        ]
        # RpcInterceptor first (outermost): it maps and counts what the bearer-token check refuses too.
        self.server = grpc.aio.server(options=options, interceptors=[self.rpcs, *interceptors(self.settings, SERVICE_NAME)])
        labelgate_pb2_grpc.add_LabelgateServicer_to_server(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((SERVICE_NAME, "grpc.health.v1.Health", reflection.SERVICE_NAME), self.server)
        for name in _HEALTH_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            credentials = server_credentials(self.settings)
            if credentials is None:
                self.port = self.server.add_insecure_port(address)
            else:
                self.port = self.server.add_secure_port(address, credentials)
        except RuntimeError as error:  # grpcio raises where it used to return 0
            raise OSError(f"cannot listen on {address}: {error}") from None
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        await self.server.start()
        if self.settings.metrics_port >= 0:
            self.metrics_server = self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
            self.metrics_port = self.metrics_server.server_address[1]
        log.info("listening on %s:%d (NOT_SERVING until the models are loaded)", self.settings.host, self.port)
        self._write_port_file()
        await self._load()

    async def _load(self) -> None:
        """Loads every model side by side; each is served as soon as it is ready, SERVING once all are."""
        # In a thread: the demo pair's weights may be written first, and health must keep answering.
        specs = await asyncio.to_thread(model_specs, self.settings)
        if self.settings.demo_weights:
            log.warning("serving RANDOM demo weights from %s: masks and boxes are meaningless", self.settings.demo_weights)
        cache_bytes = cache_bytes_by_model(specs, self.settings.cache_bytes)
        context = await asyncio.to_thread(load_context, self.settings)
        service = build_service(self.settings, self.metrics, specs)
        self.servicer.service = service
        self.servicer.video = VideoService(service, SessionLimits(
            self.settings.video_max_sessions, self.settings.video_session_ttl_s, self.settings.video_session_bytes,
            self.settings.video_window))
        self.servicer.video.start()

        async def load_and_serve(spec) -> Backend:
            backend, kind = await load_model(spec, context, self.settings.warmup)
            service.serve(build_runtime(backend, kind, self.settings, self.metrics, cache_bytes.get(spec.name, 0)))
            log.info("serving %s (%s %s on %s)", spec.name, kind.name, backend.info.version, backend.info.device)
            return backend

        backends = await asyncio.gather(*(load_and_serve(spec) for spec in specs))
        for name in _HEALTH_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("SERVING on %s:%d: %s", self.settings.host, self.port, ", ".join(spec.name for spec in specs))
        self.readiness = ReadinessMonitor.for_backends(backends, self._set_serving)
        self.readiness.start()

    async def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in _HEALTH_NAMES:
            await self.health.set(name, status)

    def _write_port_file(self) -> None:
        if self.settings.port_file:
            path = Path(self.settings.port_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"port": self.port, "metrics_port": self.metrics_port}))
            tmp.replace(path)

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        """NOT_SERVING first, then let in-flight RPCs finish within the grace period."""
        log.info("shutting down: NOT_SERVING, %.0f s grace for in-flight requests", self.settings.grace_seconds)
        if self.readiness is not None:
            await self.readiness.stop()
        await self.health.enter_graceful_shutdown()
        if self.servicer.video is not None:
            # Before the drain: a Propagate stream can outlast the grace, and its session dies with the process anyway.
            await self.servicer.video.shut_down()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.grace_seconds
        if await self.rpcs.drained(self.settings.grace_seconds):
            # Handlers are done, but a large response may still be on its way out: closing the
            # transport now would reset it.
            await asyncio.sleep(min(_RESPONSE_FLUSH_S, max(0.0, deadline - loop.time())))
        if self.server is not None:
            await self.server.stop(max(0.0, deadline - loop.time()))
        if self.servicer.service is not None:
            await self.servicer.service.close()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        log.info("stopped")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loading = asyncio.create_task(self.start())
        stop_wait = asyncio.create_task(self._stopping.wait())
        done, _ = await asyncio.wait({loading, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if loading in done:
            loading.result()  # re-raises a failed start
            await stop_wait
        else:
            loading.cancel()
        await self.stop()
