"""Encoders for one binary mask (a 2-D numpy bool array, H x W) into the formats the service
returns: COCO RLE, polygons, PNG, plus its tight box and area."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import cv2
import numpy as np
import pycocotools.mask

COCO_RLE = "coco_rle"
POLYGONS = "polygons"
PNG = "png"
FORMATS = frozenset({COCO_RLE, POLYGONS, PNG})

BBox = tuple[float, float, float, float]
Polygon = tuple[np.ndarray, bool]


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask, dtype=bool).astype(np.uint8)


def coco_rle(mask: np.ndarray) -> tuple[list[int], str]:
    """Compressed COCO RLE as (size=[H, W], counts)."""
    rle = pycocotools.mask.encode(np.asfortranarray(_as_uint8(mask)))
    return [int(n) for n in rle["size"]], rle["counts"].decode("ascii")


def polygons(mask: np.ndarray) -> list[Polygon]:
    """Contours as (flat float32 [x0, y0, x1, y1, ...], is_hole) pairs.

    RETR_CCOMP gives a two-level hierarchy: outer boundaries, and the holes inside them (a
    contour with a parent is a hole). Rasterise the outers and subtract the holes to get the
    mask back. Points are pixel centres of mask pixels on the boundary, for holes too: a hole
    polygon runs through the mask pixels around the hole, so filling it with cv2.fillPoly
    clears that one-pixel rim as well (redraw the hole's outline to keep it).

    Contours with fewer than 3 points (single pixels, straight one-pixel-wide lines) are
    skipped: they enclose no area and most polygon consumers reject them.
    """
    contours, hierarchy = cv2.findContours(
        _as_uint8(mask), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    )
    if hierarchy is None:
        return []
    parents = hierarchy[0][:, 3]
    return [
        (contour.reshape(-1).astype(np.float32), bool(parent != -1))
        for contour, parent in zip(contours, parents)
        if len(contour) >= 3
    ]


def png(mask: np.ndarray) -> bytes:
    """Single-channel 8-bit PNG, 0 outside the mask and 255 inside."""
    ok, buffer = cv2.imencode(".png", _as_uint8(mask) * 255)
    if not ok:
        raise RuntimeError(f"cv2.imencode failed for a mask of shape {mask.shape}")
    return buffer.tobytes()


def bbox(mask: np.ndarray) -> BBox | None:
    """Tight box (x_min, y_min, x_max, y_max), max exclusive; None for an empty mask.

    Reduces rows and columns with np.any instead of np.nonzero over every pixel, which is
    much faster on large masks.
    """
    rows = np.any(mask, axis=1)
    if not rows.any():
        return None
    cols = np.any(mask, axis=0)
    y_min, y_max = _first_and_end(rows)
    x_min, x_max = _first_and_end(cols)
    return float(x_min), float(y_min), float(x_max), float(y_max)


def _first_and_end(flags: np.ndarray) -> tuple[int, int]:
    """Index of the first True and one past the last True of a non-empty 1-D bool array."""
    first = int(np.argmax(flags))
    end = len(flags) - int(np.argmax(flags[::-1]))
    return first, end


def area(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


@dataclass(frozen=True, eq=False)  # eq would compare polygon ndarrays and raise
class EncodedMask:
    score: float
    bbox: BBox | None
    area: int
    rle: tuple[list[int], str] | None
    polygons: list[Polygon] | None
    png: bytes | None


def encode_mask(mask: np.ndarray, score: float, formats: Collection[str]) -> EncodedMask:
    """Box and area always; each of COCO_RLE, POLYGONS, PNG only when asked for."""
    unknown = set(formats) - FORMATS
    if unknown:
        raise ValueError(f"unknown mask formats {sorted(unknown)}; known: {sorted(FORMATS)}")
    return EncodedMask(
        score=float(score),
        bbox=bbox(mask),
        area=area(mask),
        rle=coco_rle(mask) if COCO_RLE in formats else None,
        polygons=polygons(mask) if POLYGONS in formats else None,
        png=png(mask) if PNG in formats else None,
    )
