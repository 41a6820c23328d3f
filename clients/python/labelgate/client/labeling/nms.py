"""Greedy non-maximum suppression over found objects, by box IoU or by mask IoU (pycocotools on RLE)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pycocotools.mask


def box_iou(boxes: np.ndarray) -> np.ndarray:
    """N x N IoU of x0, y0, x1, y1 boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    top_left = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = area[:, None] + area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def mask_iou(rles: Sequence[dict]) -> np.ndarray:
    """N x N IoU of COCO RLE masks {"size": [h, w], "counts": str}."""
    encoded = [{"size": list(r["size"]), "counts": r["counts"].encode("ascii")} for r in rles]
    if not encoded:
        return np.zeros((0, 0))
    return np.asarray(pycocotools.mask.iou(encoded, encoded, [0] * len(encoded)), dtype=np.float64).reshape(
        len(encoded), len(encoded))


def keep_after_nms(scores: Sequence[float], iou: np.ndarray, threshold: float) -> list[int]:
    """Indices kept, best score first (ties: the earlier one): each drops the later ones that
    overlap it by more than `threshold`. threshold >= 1 keeps everything."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for index in order:
        if all(iou[index, other] <= threshold for other in kept):
            kept.append(index)
    return kept


def suppress(objects: Sequence, threshold: float, by: str) -> list:
    """`objects` (each with .score, .box and .rle) after NMS; mask IoU needs every object's rle,
    else boxes are compared."""
    if len(objects) < 2 or threshold >= 1.0:
        return sorted(objects, key=lambda o: -o.score)
    if by == "mask" and all(o.rle is not None for o in objects):
        iou = mask_iou([o.rle for o in objects])
    else:
        iou = box_iou(np.array([o.box for o in objects]))
    return [objects[i] for i in keep_after_nms([o.score for o in objects], iou, threshold)]
