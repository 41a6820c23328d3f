"""Synthetic photos: a shaded background with a few filled shapes, JPEG-encoded like an upload.

Each seed gives different pixels, so each seed is a new image to the server's content-hash cache."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def _shapes(seed: int, width: int, height: int):
    """The background's two end colours and 8 filled ellipses (colour, centre, axes, angle), drawn in order."""
    rng = np.random.default_rng(seed)
    low, high = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ellipses = []
    for _ in range(8):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(width // 20, width // 4)), int(rng.integers(height // 20, height // 4)))
        ellipses.append((color, center, axes, float(rng.integers(0, 180))))
    return low, high, ellipses


def scene(seed: int, width: int, height: int) -> np.ndarray:
    low, high, ellipses = _shapes(seed, width, height)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    image = np.ascontiguousarray(np.broadcast_to(low + (high - low) * ramp, (height, width, 3)).astype(np.uint8))
    for color, center, axes, angle in ellipses:
        cv2.ellipse(image, center, axes, angle, 0, 360, color, thickness=-1)
    return image


def object_masks(seed: int, width: int, height: int) -> list[np.ndarray]:
    """The visible part of each shape of `scene(seed, ...)` (later shapes cover earlier ones): the
    masks a trained SAM 2 would give for clicks on them. Shapes covered entirely are left out."""
    _, _, ellipses = _shapes(seed, width, height)
    labels = np.zeros((height, width), np.uint8)
    for index, (_, center, axes, angle) in enumerate(ellipses, start=1):
        cv2.ellipse(labels, center, axes, angle, 0, 360, index, thickness=-1)
    masks = [labels == index for index in range(1, len(ellipses) + 1)]
    return [mask for mask in masks if mask.any()]


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def click_point(index: int, width: int, height: int) -> tuple[float, float]:
    """A different click for each index, spread over the image as a labeler's clicks would be."""
    rng = np.random.default_rng(10_000 + index)
    return float(rng.uniform(0.1, 0.9) * width), float(rng.uniform(0.1, 0.9) * height)
