"""CVAT interactor prompts -> one SAM 2 mask from labelgate. Shared by the nuclio interactor and
the cvat-sdk interaction function.

CVAT sends pixel coordinates of the frame: clicks as [x, y] pairs, the optional box as its two
corners [[x1, y1], [x2, y2]].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from labelgate.client import Client


def _pair(value, what: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected [x, y] in pixels, got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"{what}: coordinates must be finite, got {value!r}")
    return x, y


def _pairs(values, what: str) -> list[tuple[float, float]]:
    if values is None:
        return []
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise ValueError(f"{what}: expected a list of [x, y] pairs, got {values!r}")
    return [_pair(value, f"{what}[{index}]") for index, value in enumerate(values)]


def box_from_corners(corners) -> tuple[float, float, float, float]:
    """[[x1, y1], [x2, y2]] (any two opposite corners) -> (x_min, y_min, x_max, y_max)."""
    if not isinstance(corners, Sequence) or len(corners) != 2:
        raise ValueError(f"obj_bbox: expected [[x1, y1], [x2, y2]], got {corners!r}")
    (x1, y1), (x2, y2) = _pair(corners[0], "obj_bbox[0]"), _pair(corners[1], "obj_bbox[1]")
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def segment_prompt(client: Client, image, pos_points, neg_points, bbox=None) -> tuple[np.ndarray, float]:
    """The best SAM 2 mask (H x W bool) and its score for clicks and an optional box.

    One click alone is ambiguous (a part, or the whole?), so for it SAM 2 returns 3 candidates
    and the best-scoring one is kept, as SAM 2 recommends; more clicks or a box give one mask.
    Raises ValueError for malformed prompts, LabelgateClientError when the call fails.
    """
    points = [(x, y, False) for x, y in _pairs(pos_points, "pos_points")]
    points += [(x, y, True) for x, y in _pairs(neg_points, "neg_points")]
    boxes = [box_from_corners(bbox)] if bbox else []
    if not any(not negative for _, _, negative in points) and not boxes:
        raise ValueError("no prompt: click on the object (a positive point) or draw a box around it")
    multimask = len(points) == 1 and not boxes
    result = client.segment(image, points=points, boxes=boxes, multimask=multimask)
    best = result.objects[0].best
    return best.to_numpy(), best.score
