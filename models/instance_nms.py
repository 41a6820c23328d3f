"""Non-maximum suppression of instance masks by mask IoU (SAM 3's post-processing applies none: a
concept query can return the same object twice)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from labelgate.models.backend import ConceptInstance


def mask_iou_matrix(masks: Sequence[np.ndarray]) -> np.ndarray:
    """(N, N) IoU of N boolean masks of one size; two empty masks have IoU 0."""
    if not masks:
        return np.zeros((0, 0), np.float64)
    flat = np.stack([mask.reshape(-1) for mask in masks]).astype(np.float32)
    intersection = flat @ flat.T  # counts up to H*W: exact in float32 below 2**24 pixels, close enough above
    areas = np.diag(intersection)
    union = areas[:, None] + areas[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0).astype(np.float64)


def suppress(instances: Sequence[ConceptInstance], iou_threshold: float, max_instances: int) -> list[ConceptInstance]:
    """The highest-scoring instances, best first, dropping any whose mask overlaps an already kept one
    of the same label by more than `iou_threshold` (1.0 keeps all), at most `max_instances`."""
    order = sorted(range(len(instances)), key=lambda i: -instances[i].score)
    iou = mask_iou_matrix([instance.mask for instance in instances])
    kept: list[int] = []
    for index in order:
        if len(kept) == max_instances:
            break
        label = instances[index].label
        if all(instances[k].label != label or iou[index, k] <= iou_threshold for k in kept):
            kept.append(index)
    return [instances[index] for index in kept]
