"""GPU rows, only with CUDA: absolute model times in-process, in fp32 and bf16/fp16.

These are the only absolute numbers the benchmark reports: on a dedicated GPU they mean something.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

from labelgate.bench.images import click_point, scene
from labelgate.bench.setup import Models
from labelgate.bench.timing import median

DTYPES = ("fp32", "bf16", "fp16")


def _cuda_timed(call, repeats: int) -> float:
    import torch

    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return median(times)


def gpu_rows(models: Models, image_size: tuple[int, int]) -> list[dict]:
    """Encoder ms/image at batch 1 and 8, click (decoder) p50 ms, Grounding DINO images/s."""
    import torch

    from labelgate.models.backend import DecodeItem, DetectItem, SamPrompt
    from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend

    width, height = image_size
    images = [scene(seed, width, height) for seed in range(8)]
    measures = {"encoder, batch 1": ("ms/image", {}), "encoder, batch 8": ("ms/image", {}),
                "click (decoder) p50": ("ms", {}), "Grounding DINO": ("images/s", {})}
    detector = GroundingDinoBackend.from_pretrained(models.gdino_dir, device="cuda")
    for dtype in DTYPES:
        sam2 = Sam2TorchBackend.from_checkpoint(models.sam2_config, models.sam2_checkpoint, "cuda", models.sam2_overrides,
                                                dtype=dtype)
        features = sam2.encode(images[:1])[0]
        measures["encoder, batch 1"][1][dtype] = _cuda_timed(lambda: sam2.encode(images[:1]), 10) * 1000
        measures["encoder, batch 8"][1][dtype] = _cuda_timed(lambda: sam2.encode(images), 5) * 1000 / 8
        prompt = SamPrompt(np.array([click_point(0, width, height)], np.float32), np.array([1], np.int32),
                           np.zeros((0, 4), np.float32), False)
        sam2.decode([DecodeItem(features, prompt)])
        measures["click (decoder) p50"][1][dtype] = _cuda_timed(lambda: sam2.decode([DecodeItem(features, prompt)]), 30) * 1000
        autocast = contextlib.nullcontext() if dtype == "fp32" else torch.autocast("cuda", dtype=sam2.dtype)
        item = DetectItem(images[0], "car . person .", 0.35, 0.25)
        with autocast:
            detector.detect([item])
            measures["Grounding DINO"][1][dtype] = 1.0 / _cuda_timed(lambda: detector.detect([item]), 10)
        torch.cuda.empty_cache()
    return [{"measure": name, "unit": unit, **values} for name, (unit, values) in measures.items()]
