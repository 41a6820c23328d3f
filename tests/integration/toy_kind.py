"""A toy model kind registered from outside labelgate, as a plugin would be (`--plugin FILE`).

`wand` is a magic wand: its "features" are the RGB pixels themselves, and a click selects
the pixels whose colour lies within `tolerance` of the clicked pixel's (a box selects its inside).
Enough to prove the plugin seam: no line in labelgate.server names it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from labelgate.models.backend import DecodedMasks, ImageFeatures, ModelInfo, PromptSegmentationBackend
from labelgate.models.kinds import PROMPT_SEGMENT, ModelKind, register


def wand_mask(pixels: np.ndarray, x: float, y: float, tolerance: int) -> np.ndarray:
    height, width = pixels.shape[:2]
    seed = pixels[min(int(y), height - 1), min(int(x), width - 1)].astype(np.int16)
    return (np.abs(pixels.astype(np.int16) - seed).max(axis=2) <= tolerance)


class WandBackend(PromptSegmentationBackend):
    def __init__(self, name: str, tolerance: int):
        self.tolerance = tolerance
        self.info = ModelInfo(name=name, kind="wand", version=f"tol{tolerance}", device="cpu")

    def encode(self, images):
        return [ImageFeatures(image_embed=image, high_res_feats=(), orig_hw=image.shape[:2], nbytes=image.nbytes) for image in images]

    def decode(self, items):
        results = []
        for item in items:
            pixels, prompt = item.features.image_embed, item.prompt
            if len(prompt.boxes):
                masks = np.zeros((len(prompt.boxes), 1, *pixels.shape[:2]), bool)
                for index, (x0, y0, x1, y1) in enumerate(prompt.boxes.astype(int)):
                    masks[index, 0, y0:y1, x0:x1] = True
            else:
                masks = np.ones((1, 1, *pixels.shape[:2]), bool)
                for (x, y), label in zip(prompt.points, prompt.labels):
                    selected = wand_mask(pixels, x, y, self.tolerance)
                    masks[0, 0] &= selected if label == 1 else ~selected
            results.append(DecodedMasks(masks=masks, scores=np.ones(masks.shape[:2], np.float32)))
        return results


def load(spec, context):
    wait_for = spec.option("wait_for")
    while wait_for and not Path(wait_for).exists():  # lets a test hold this model's load open
        time.sleep(0.05)
    return WandBackend(spec.name, int(spec.option("tolerance", "10")))


KIND = register(ModelKind(
    name="wand",
    summary="toy magic wand (tests): pixels of the clicked colour",
    capabilities=frozenset({PROMPT_SEGMENT}),
    load=load,
    options={"tolerance": "max per-channel difference from the clicked colour", "wait_for": "load waits for this file"},
))
