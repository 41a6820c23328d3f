"""Which stages `labelgate serve` runs at a lower CPU priority: the seconds-long image encoder and
detector when the models are on the CPU, never the mask decoder that answers clicks."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from labelgate.models.backend import ModelInfo
from labelgate.server.app import build_service
from labelgate.server.metrics import Metrics
from labelgate.server.settings import Settings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")


def _niceness(items):
    return [os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) for _ in items]


class _Backend:
    """Each stage answers with the niceness of the thread it runs on."""

    def __init__(self, kind: str, device: str):
        self.info = ModelInfo(name=f"{kind}-model", kind=kind, version="v1", device=device)
        self.encode = self.decode = self.detect = _niceness


async def _stage_niceness(device: str, heavy_stage_nice: int) -> dict[str, int]:
    settings = Settings(heavy_stage_nice=heavy_stage_nice)
    service = build_service(settings, Metrics(), _Backend("sam2", device), _Backend("grounding_dino", device))
    segmenter, detector = service.segmenters["sam2-model"], service.detectors["grounding_dino-model"]
    batchers = {"encode": segmenter.encoder, "decode": segmenter.decoder, "detect": detector.batcher}
    for batcher in batchers.values():
        batcher.start()
    try:
        return {stage: await batcher.submit("item") for stage, batcher in batchers.items()}
    finally:
        for batcher in batchers.values():
            await batcher.close()


async def test_on_the_cpu_the_encoder_and_detector_yield_to_the_decoder():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert await _stage_niceness("cpu", 17) == {"encode": max(17, base), "decode": base, "detect": max(17, base)}


async def test_on_a_gpu_or_with_0_every_stage_keeps_the_process_priority():
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert await _stage_niceness("cuda:0", 17) == {"encode": base, "decode": base, "detect": base}
    assert await _stage_niceness("cpu", 0) == {"encode": base, "decode": base, "detect": base}


def test_the_niceness_must_be_one_linux_accepts():
    with pytest.raises(ValueError, match="--heavy-stage-nice must be 0-19"):
        Settings(heavy_stage_nice=20, demo_weights="x").validate()
