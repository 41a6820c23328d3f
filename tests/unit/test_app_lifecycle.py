"""The App's life on a real in-process grpc.aio server with a stand-in model (a registered model
kind): health NOT_SERVING while the model loads, SERVING once it is, NOT_SERVING again on
shutdown while the call in flight is let finish. Also: no product module leans on another
package's private modules."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import logging
import threading
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from labelgate.models import kinds
from labelgate.models.backend import ImageFeatures, ModelInfo, PromptSegmentationBackend
from labelgate.server.app import App
from labelgate.server.grpc_logs import GRPC_CORE_LOGGER, UnsentAnswerFilter
from labelgate.server.settings import Settings
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class StandInSam2(PromptSegmentationBackend):
    """Loads once `loaded` is set and encodes once `release` is set (both on worker threads)."""

    def __init__(self, name: str):
        self.info = ModelInfo(name=name, kind="stand_in_sam2", version="v1", device="stand-in")
        self.loaded, self.encoding, self.release = threading.Event(), threading.Event(), threading.Event()

    def encode(self, images):
        self.encoding.set()
        self.release.wait(timeout=60)
        arrays = [np.zeros(shape, np.float32) for shape in [(4, 2, 2), (2, 4, 4), (2, 2, 2)]]
        return [ImageFeatures(arrays[0], tuple(arrays[1:]), image.shape[:2], sum(a.nbytes for a in arrays)) for image in images]

    def decode(self, items):
        raise AssertionError("not used here")


STAND_INS: dict[str, StandInSam2] = {}  # by model name, set by the test before the App loads it


def _load_stand_in(spec, context):
    model = STAND_INS[spec.name]
    model.loaded.wait(timeout=60)
    return model


kinds.register(kinds.ModelKind(name="stand_in_sam2", summary="a SAM 2 stand-in for tests",
                               capabilities=frozenset({kinds.PROMPT_SEGMENT}), load=_load_stand_in))


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


async def test_health_is_not_serving_while_loading_serving_once_loaded_and_not_serving_on_shutdown():
    sam2 = STAND_INS["stand_in"] = StandInSam2("stand_in")
    app = App(Settings(model=("stand_in=stand_in_sam2:",), device="cpu", port=0, metrics_port=-1, warmup=False,
                       grace_seconds=30))
    starting = asyncio.create_task(app.start())
    await _until(lambda: app.port != 0, "listening")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    health = health_pb2_grpc.HealthStub(channel)

    async def status() -> int:
        return (await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)).status

    stopping = None
    try:
        assert await status() == NOT_SERVING
        sam2.loaded.set()
        await starting
        assert await status() == SERVING
        assert any(isinstance(each, UnsentAnswerFilter) for each in logging.getLogger(GRPC_CORE_LOGGER).filters)
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
    finally:
        sam2.loaded.set()
        sam2.release.set()
        await channel.close()
        await starting
        await (stopping or app.stop())

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
