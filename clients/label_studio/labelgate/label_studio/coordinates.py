"""Label Studio region values (percent of the original image, origin top-left) <-> labelgate
pixels of the original image.

| Label Studio | x, y = top-left corner, width, height, all 0-100 % ; rotation in degrees,
|              | clockwise about the top-left corner |
| labelgate    | pixels; boxes as (x_min, y_min, x_max, y_max) |
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Box = tuple[float, float, float, float]


def _clamp(value: float, upper: float) -> float:
    return min(max(value, 0.0), float(upper))


def point_to_pixels(value: Mapping, width: int, height: int) -> tuple[float, float]:
    """A keypoint's {x, y} percent -> (x, y) pixels, kept inside the image."""
    return _clamp(value["x"] * width / 100.0, width), _clamp(value["y"] * height / 100.0, height)


def box_to_pixels(value: Mapping, width: int, height: int) -> Box:
    """A rectangle's {x, y, width, height, rotation?} percent -> (x_min, y_min, x_max, y_max)
    pixels. A rotated rectangle becomes the upright box around it (SAM 2 takes upright boxes)."""
    left, top = value["x"] * width / 100.0, value["y"] * height / 100.0
    box_width, box_height = value["width"] * width / 100.0, value["height"] * height / 100.0
    angle = math.radians(value.get("rotation") or 0.0)
    cos, sin = math.cos(angle), math.sin(angle)
    corners = [(dx * cos - dy * sin, dx * sin + dy * cos) for dx, dy in
               ((0, 0), (box_width, 0), (box_width, box_height), (0, box_height))]
    xs = [left + dx for dx, _ in corners]
    ys = [top + dy for _, dy in corners]
    return _clamp(min(xs), width), _clamp(min(ys), height), _clamp(max(xs), width), _clamp(max(ys), height)


def box_to_percent(box: Sequence[float], width: int, height: int) -> dict:
    """(x_min, y_min, x_max, y_max) pixels -> a rectangle's value (without its labels)."""
    x_min, y_min, x_max, y_max = (float(v) for v in box)
    return {
        "x": x_min * 100.0 / width,
        "y": y_min * 100.0 / height,
        "width": (x_max - x_min) * 100.0 / width,
        "height": (y_max - y_min) * 100.0 / height,
        "rotation": 0,
    }


def points_to_percent(points: Sequence[Sequence[float]], width: int, height: int) -> list[list[float]]:
    """Polygon vertices in pixels -> [[x %, y %], ...]."""
    return [[float(x) * 100.0 / width, float(y) * 100.0 / height] for x, y in points]
