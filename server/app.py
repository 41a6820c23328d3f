"""Wires settings, models, caches, batchers, the servicer, health and reflection into one server."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from labelgate.models.backend import DecodeItem, DetectItem, SamPrompt
from labelgate.server.batcher import NORMAL, DynamicBatcher
from labelgate.server.cache import ByteLRUCache
from labelgate.server.errors import NotReady
from labelgate.server.metrics import Metrics
from labelgate.server.readiness import ReadinessMonitor
from labelgate.server.security import interceptors, server_credentials
from labelgate.server.service import Detector, LabelgateService, Segmenter
from labelgate.server.servicer import LabelgateServicer
from labelgate.server.settings import Settings
from labelgate.server.shared_cache import build_feature_cache
from labelgate.server.validation import Limits
from labelgate.v1 import labelgate_pb2, labelgate_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = labelgate_pb2.DESCRIPTOR.services_by_name["Labelgate"].full_name
_HEALTH_NAMES = ("", SERVICE_NAME)
_RESPONSE_FLUSH_S = 0.5


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
    return requested


def load_backends(settings: Settings):
    """(SAM 2 backend, Grounding DINO backend or None), loaded as the settings say. Blocking.
    A remote backend that cannot be reached yet raises NotReady."""
    if settings.backend == "triton":
        return _connect_triton(settings)
    from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
    from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend
    from labelgate.models.weights_cli import ensure_demo_weights

    device = resolve_device(settings.device)
    config, checkpoint, overrides, gdino = (
        settings.sam2_config, Path(settings.sam2_checkpoint), settings.sam2_override, settings.gdino_model
    )
    if settings.demo_weights:
        checkpoint, gdino_dir = ensure_demo_weights(Path(settings.demo_weights))
        config, overrides, gdino = SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES + tuple(settings.sam2_override), str(gdino_dir)
        log.warning("serving RANDOM demo weights from %s: masks and boxes are meaningless", settings.demo_weights)
    name = settings.sam2_name or ("sam2_demo" if settings.demo_weights else "")
    sam2 = Sam2TorchBackend.from_checkpoint(config, checkpoint, device, overrides, name=name, dtype=settings.dtype)
    detector = GroundingDinoBackend.from_pretrained(Path(gdino), device=device) if gdino else None
    return sam2, detector


def _connect_triton(settings: Settings):
    from labelgate.models.triton.connect import connect_backends
    from labelgate.models.weights_cli import ensure_demo_weights

    gdino, name = settings.gdino_model, settings.sam2_name
    if settings.demo_weights:  # the processor of the demo Grounding DINO the repository was exported from
        gdino = str(ensure_demo_weights(Path(settings.demo_weights))[1])
    return connect_backends(settings.triton_url, sam2_name=name, gdino_processor=Path(gdino) if gdino else None)


def warm_up(sam2, detector) -> None:
    """One pass through every model, so the first user request does not pay for lazy init."""
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    features = _first(sam2.encode([image]))
    point = SamPrompt(np.array([[10.0, 10.0]], np.float32), np.array([1], np.int32), np.zeros((0, 4), np.float32), True)
    _first(sam2.decode([DecodeItem(features, point)]))
    if detector is not None:
        _first(detector.detect([DetectItem(image, "object .", 0.35, 0.25)]))


def _first(results):
    if isinstance(results[0], Exception):
        raise results[0]
    return results[0]


def build_service(settings: Settings, metrics: Metrics, sam2, detector) -> LabelgateService:
    delay = settings.max_batch_delay_ms / 1000.0

    def batcher(stage, backend, run, heavy=False):
        # Seconds-long stages on the CPU yield it to the mask decoder's clicks, which share those cores.
        priority = settings.heavy_stage_priority if heavy and backend.info.device == "cpu" else NORMAL
        return DynamicBatcher(stage, backend.info.name, run, settings.max_batch_size, delay, settings.max_queue, metrics.batch,
                              worker_priority=priority)

    segmenter = Segmenter(
        backend=sam2,
        features=build_feature_cache(settings, metrics, sam2),
        encoder=batcher("encode", sam2, sam2.encode, heavy=True),
        decoder=batcher("decode", sam2, sam2.decode),
    )
    detectors = {}
    if detector is not None:
        detectors[detector.info.name] = Detector(detector, batcher("detect", detector, detector.detect, heavy=True))
    images = ByteLRUCache("images", settings.image_cache_bytes, lambda image: len(image.data), metrics.cache)
    limits = Limits(max_points=settings.max_points, max_boxes=settings.max_boxes, max_image_pixels=settings.max_image_pixels)
    return LabelgateService({sam2.info.name: segmenter}, detectors, images, limits, metrics)


class App:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = Metrics()
        self.servicer = LabelgateServicer(self.metrics)
        self.health = HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.metrics_server = None
        self.port = 0
        self.metrics_port = -1
        self._stopping = asyncio.Event()
        self.readiness: ReadinessMonitor | None = None

    async def start(self) -> None:
        """Listens at once (health NOT_SERVING), loads and warms the models, then reports SERVING."""
        options = [
            ("grpc.max_receive_message_length", self.settings.max_message_bytes),
            ("grpc.max_send_message_length", self.settings.max_message_bytes),
        ]
        self.server = grpc.aio.server(options=options, interceptors=interceptors(self.settings, SERVICE_NAME))
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
        sam2, detector = await self._load_backends()
        service = build_service(self.settings, self.metrics, sam2, detector)
        for runtime in list(service.segmenters.values()):
            runtime.encoder.start()
            runtime.decoder.start()
        for runtime in service.detectors.values():
            runtime.batcher.start()
        self.servicer.service = service
        for name in _HEALTH_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        models = ", ".join(f"{info.name} ({info.kind} {info.version} on {info.device})" for info, _ in service.list_models())
        log.info("SERVING on %s:%d: %s", self.settings.host, self.port, models)
        self.readiness = ReadinessMonitor.for_backends((sam2, detector), self._set_serving)
        self.readiness.start()

    async def _load_backends(self):
        """Loads and warms the backends; while a remote one (Triton) is not ready, waits for it."""
        attempts = 0
        while True:
            backends = ()
            try:
                backends = await asyncio.to_thread(load_backends, self.settings)
                if self.settings.warmup:
                    await asyncio.to_thread(warm_up, *backends)
                return backends
            except NotReady as error:
                for backend in backends:
                    if hasattr(backend, "close"):
                        backend.close()
                if attempts % 30 == 0:
                    log.warning("waiting for the models (NOT_SERVING): %s", error)
                attempts += 1
                await asyncio.sleep(1.0)

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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.grace_seconds
        if await self.servicer.drained(self.settings.grace_seconds):
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
