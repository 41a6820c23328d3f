"""Which stages `labelgate serve` runs at a lower CPU priority: the ones a model kind declares heavy
(SAM 2's image encoder, Grounding DINO's detector) when the models are on the CPU, never the mask
decoder that answers clicks."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from labelgate.models import kinds
from labelgate.models.backend import DetectionBackend, ModelInfo, PromptSegmentationBackend
from labelgate.server.metrics import Metrics
from labelgate.server.model_runtime import build_runtime
from labelgate.server.settings import Settings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")


def _policy(items):
    return [os.sched_getscheduler(threading.get_native_id()) for _ in items]


class _Backend(PromptSegmentationBackend, DetectionBackend):
    """Each stage answers with the scheduling policy of the thread it runs on."""

    def __init__(self, kind: str, device: str):
        self.info = ModelInfo(name=f"{kind}-model", kind=kind, version="v1", device=device)

    def encode(self, items):
        return _policy(items)

    decode = detect = encode


async def _stage_policies(device: str, heavy_stage_priority: str) -> dict[str, int]:
    settings = Settings(heavy_stage_priority=heavy_stage_priority)
    metrics = Metrics()
    segmenter = build_runtime(_Backend("sam2", device), kinds.get("sam2"), settings, metrics, 1 << 20).segmenter
    detector = build_runtime(_Backend("grounding_dino", device), kinds.get("grounding_dino"), settings, metrics, 0).detector
    batchers = {"encode": segmenter.encoder, "decode": segmenter.decoder, "detect": detector.batcher}
    for batcher in batchers.values():
        batcher.start()
    try:
        return {stage: await batcher.submit("item") for stage, batcher in batchers.items()}
    finally:
        for batcher in batchers.values():
            await batcher.close()


async def test_on_the_cpu_the_encoder_and_detector_yield_to_the_decoder():
    base = os.sched_getscheduler(0)
    assert await _stage_policies("cpu", "idle") == {"encode": os.SCHED_IDLE, "decode": base, "detect": os.SCHED_IDLE}


async def test_on_a_gpu_or_at_normal_priority_every_stage_keeps_the_process_priority():
    base = os.sched_getscheduler(0)
    assert await _stage_policies("cuda:0", "idle") == {"encode": base, "decode": base, "detect": base}
    assert await _stage_policies("cpu", "normal") == {"encode": base, "decode": base, "detect": base}


def test_the_priority_must_be_a_known_one():
    assert Settings().heavy_stage_priority == "idle"
    with pytest.raises(ValueError, match="--heavy-stage-priority urgent: choose idle, low, normal"):
        Settings(heavy_stage_priority="urgent", demo_weights="x").validate()
