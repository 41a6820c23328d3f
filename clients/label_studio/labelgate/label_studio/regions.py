"""Label Studio result regions (the items of a prediction's `result`) built from labelgate
masks and boxes. Masks go out in Label Studio's own brush RLE, encoded by its SDK."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from label_studio_sdk.converter import brush

from labelgate.label_studio.coordinates import box_to_percent, points_to_percent
from labelgate.label_studio.label_config import BRUSH, POLYGON, RECTANGLE, Control

# Polygons with fewer vertices than this are specks Label Studio cannot draw.
_MIN_POLYGON_POINTS = 3


def _region(control: Control, kind: str, value: dict, width: int, height: int, score: float) -> dict:
    return {
        "id": uuid.uuid4().hex[:10],
        "from_name": control.name,
        "to_name": control.to_name,
        "type": kind,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": value,
        "score": float(score),
        "readonly": False,
    }


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """An H x W bool mask -> Label Studio's brush RLE (RGBA, 255 where the mask is)."""
    return brush.mask2rle(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)


def brush_region(control: Control, mask: np.ndarray, label: str, score: float) -> dict:
    height, width = mask.shape
    value = {"format": "rle", "rle": mask_to_rle(mask), BRUSH: [label]}
    return _region(control, BRUSH, value, width, height, score)


def rectangle_region(control: Control, box: Sequence[float], width: int, height: int, label: str, score: float) -> dict:
    value = {**box_to_percent(box, width, height), RECTANGLE: [label]}
    return _region(control, RECTANGLE, value, width, height, score)


def polygon_regions(control: Control, polygons: Sequence[tuple[np.ndarray, bool]], width: int, height: int,
                    label: str, score: float) -> list[dict]:
    """One region per outer contour: Label Studio polygons cannot have holes, so holes are left out."""
    return [
        _region(control, POLYGON, {"points": points_to_percent(points, width, height), "closed": True, POLYGON: [label]},
                width, height, score)
        for points, hole in polygons
        if not hole and len(points) >= _MIN_POLYGON_POINTS
    ]
