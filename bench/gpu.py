"""GPU rows, only with CUDA: absolute times measured in-process, the only absolute numbers the
benchmark reports (on a dedicated GPU they mean something).

Each row is `{"measure", "unit", <column>: value}`, a column per way of running it ("torch fp32",
"TensorRT fp16", ...). A measure that cannot run (no TensorRT, the time budget spent, an error)
reads "n/a (reason)" instead of a number, so the table is always complete. This module measures
labelgate's serving backends; `engines.py` the export graphs against TensorRT engines.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from labelgate.bench.images import click_point, scene
from labelgate.bench.setup import Models
from labelgate.bench.timing import median

DTYPES = ("fp32", "bf16", "fp16")
DETECT_CAPTION = "car . person ."


class Budget:
    """Measures start only while time is left, so a GPU session ends on time with a complete table."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> bool:
        return time.monotonic() < self.deadline


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device_ms(call, warmup: int = 2, repeats: int = 10) -> float:
    """Median milliseconds per call, waiting for the GPU's queued work before and after each."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        _synchronize()
        started = time.perf_counter()
        call()
        _synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def not_available(error: BaseException) -> str:
    lines = str(error).splitlines()
    return f"n/a ({type(error).__name__}: {lines[0][:80] if lines else ''})"


def measure(budget: Budget, call, repeats: int = 10, per: float = 1.0) -> float | str:
    """Milliseconds per call divided by `per` (e.g. images in the batch), or why there is no number."""
    if not budget.left():
        return "n/a (time budget spent)"
    try:
        return device_ms(call, repeats=repeats) / per
    except Exception as error:  # one failing measure must not lose the others
        return not_available(error)


def per_second(milliseconds: float | str) -> float | str:
    return 1000.0 / milliseconds if isinstance(milliseconds, float) else milliseconds


def autocast(dtype: str, device_type: str = "cuda"):
    import torch

    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[dtype])


def backend_rows(models: Models, image_size: tuple[int, int], budget: Budget, device: str = "cuda") -> list[dict]:
    """labelgate's own backends, pre- and post-processing included: encoder ms/image at batch 1
    and 8, click (decoder) p50 ms, Grounding DINO images/s, in fp32, bf16 and fp16."""
    import torch

    from labelgate.models.backend import DecodeItem, DetectItem, SamPrompt
    from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend

    width, height = image_size
    images = [scene(seed, width, height) for seed in range(8)]
    prompt = SamPrompt(np.array([click_point(0, width, height)], np.float32), np.array([1], np.int32),
                       np.zeros((0, 4), np.float32), False)
    encoder_1, encoder_8, click, detect = rows = [
        {"measure": "SAM 2 encoder, batch 1", "unit": "ms/image"}, {"measure": "SAM 2 encoder, batch 8", "unit": "ms/image"},
        {"measure": "SAM 2 click (decoder + masks) p50", "unit": "ms"}, {"measure": "Grounding DINO", "unit": "images/s"}]
    detector = GroundingDinoBackend.from_pretrained(models.gdino_dir, device=device)
    detect_item = DetectItem(images[0], DETECT_CAPTION, 0.35, 0.25)
    for dtype in DTYPES:
        column = f"torch {dtype}"
        try:
            sam2 = Sam2TorchBackend.from_checkpoint(models.sam2_config, models.sam2_checkpoint, device,
                                                    models.sam2_overrides, dtype=dtype)
            features = _ok(sam2.encode(images[:1])[0])
        except Exception as error:  # e.g. a precision this device does not run
            encoder_1[column] = encoder_8[column] = click[column] = not_available(error)
        else:
            encoder_1[column] = measure(budget, lambda: _ok(sam2.encode(images[:1])[0]))
            encoder_8[column] = measure(budget, lambda: _ok(sam2.encode(images)[-1]), repeats=5, per=8)
            click[column] = measure(budget, lambda: _ok(sam2.decode([DecodeItem(features, prompt)])[0]), repeats=30)
            del sam2, features
        with autocast(dtype, device.split(":")[0]):
            detect[column] = per_second(measure(budget, lambda: _ok(detector.detect([detect_item])[0])))
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def _ok(result):
    """A backend's per-item result, raised if it is an error (so it becomes an n/a cell)."""
    if isinstance(result, Exception):
        raise result
    return result
