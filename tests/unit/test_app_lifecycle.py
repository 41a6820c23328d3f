"""The App's life on a real in-process grpc.aio server with stand-in models: health NOT_SERVING while
the models load, SERVING once they are, NOT_SERVING again on shutdown while the call in flight
is let finish. Also: no product module leans on another package's private modules."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import threading
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from labelgate.models.backend import ImageFeatures, ModelInfo
from labelgate.server import app as app_module
from labelgate.server.app import App
from labelgate.server.settings import Settings
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class StandInSam2:
    """Encodes once `release` is set (the batcher calls it on a worker thread)."""

    def __init__(self):
        self.info = ModelInfo(name="sam2_stand_in", kind="sam2", version="v1", device="stand-in")
        self.encoding = threading.Event()
        self.release = threading.Event()

    def encode(self, images):
        self.encoding.set()
        self.release.wait(timeout=60)
        arrays = [np.zeros(shape, np.float32) for shape in [(4, 2, 2), (2, 4, 4), (2, 2, 2)]]
        return [ImageFeatures(arrays[0], tuple(arrays[1:]), image.shape[:2], sum(a.nbytes for a in arrays)) for image in images]

    def decode(self, items):
        raise AssertionError("not used here")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


async def _until(condition, what: str) -> None:
    """Waits for `condition()` (a bool, or an awaitable of one)."""
    for _ in range(2000):  # 20 s at most
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {what}")


async def test_health_is_not_serving_while_loading_serving_once_loaded_and_not_serving_on_shutdown(monkeypatch):
    sam2, loading = StandInSam2(), threading.Event()

    def load_backends(settings):
        loading.wait(timeout=60)
        return sam2, None

    monkeypatch.setattr(app_module, "load_backends", load_backends)
    app = App(Settings(port=0, metrics_port=-1, warmup=False, grace_seconds=30))
    starting = asyncio.create_task(app.start())
    await _until(lambda: app.port != 0, "listening")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    health = health_pb2_grpc.HealthStub(channel)

    async def status() -> int:
        return (await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)).status

    try:
        assert await status() == NOT_SERVING
        loading.set()
        await starting
        assert await status() == SERVING
        assert (await health.Check(health_pb2.HealthCheckRequest(service="labelgate.v1.Labelgate"), timeout=5)).status == SERVING

        embed = asyncio.ensure_future(
            labelgate_pb2_grpc.LabelgateStub(channel).Embed(pb.EmbedRequest(image=pb.Image(data=_png())), timeout=60)
        )
        await _until(sam2.encoding.is_set, "encoding")
        stopping = asyncio.create_task(app.stop())
        await _until(lambda: _has(status, NOT_SERVING), "NOT_SERVING during the drain")
        assert not embed.done()

        sam2.release.set()
        reply = await embed
        await stopping
    finally:
        loading.set()
        sam2.release.set()
        await channel.close()
        if not starting.done():
            starting.cancel()

    assert (reply.width, reply.height, reply.cache_hit) == (12, 8, False)


async def _has(status, wanted: int) -> bool:
    return await status() == wanted


def _product_modules():
    for folder in ("cli", "server", "models", "core", "bench", "clients"):
        for path in (REPO / folder).rglob("*.py"):
            if not path.name.endswith(("_pb2.py", "_pb2_grpc.py")):  # generated
                yield path


def test_no_product_module_imports_a_private_module_of_another_package():
    private = []
    for path in _product_modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            private += [f"{path.relative_to(REPO)}: {name}" for name in names
                        if not name.startswith(("labelgate", "__future__")) and any(part.startswith("_") for part in name.split("."))]
    assert private == [], "use the packages' public API instead"
