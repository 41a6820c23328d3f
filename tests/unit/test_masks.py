import time

import cv2
import numpy as np
import pycocotools.mask
import pytest

from labelgate.server import masks
from labelgate.server.masks import COCO_RLE, PNG, POLYGONS, EncodedMask, encode_mask


def _random_mask(shape: tuple[int, int], seed: int, density: float = 0.4) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


def _square_with_hole() -> np.ndarray:
    mask = np.zeros((120, 160), dtype=bool)
    mask[10:110, 20:140] = True
    mask[30:90, 50:110] = False
    return mask


def _rasterise(
    polys: list[tuple[np.ndarray, bool]], shape: tuple[int, int], keep_hole_rims: bool = False
) -> np.ndarray:
    """Outers minus holes. OpenCV's hole contours run through the mask pixels around the hole,
    so cutting a hole also clears that rim; keep_hole_rims redraws it."""
    out = np.zeros(shape, dtype=np.uint8)
    as_points = [(flat.reshape(-1, 2).round().astype(np.int32), hole) for flat, hole in polys]
    cv2.fillPoly(out, [points for points, hole in as_points if not hole], 1)
    holes = [points for points, hole in as_points if hole]
    if holes:
        cv2.fillPoly(out, holes, 0)
        if keep_hole_rims:
            cv2.polylines(out, holes, isClosed=True, color=1)
    return out.astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


ODD_SHAPES = [(1, 1), (1, 17), (23, 1), (7, 13), (64, 48), (101, 333)]
SHAPES_AND_MASKS = [
    *[(shape, _random_mask(shape, seed)) for seed, shape in enumerate(ODD_SHAPES)],
    ((31, 29), np.zeros((31, 29), dtype=bool)),
    ((31, 29), np.ones((31, 29), dtype=bool)),
    ((1, 1), np.ones((1, 1), dtype=bool)),
]


@pytest.mark.parametrize(("shape", "mask"), SHAPES_AND_MASKS)
def test_coco_rle_round_trips_through_pycocotools(shape, mask):
    size, counts = masks.coco_rle(mask)
    assert size == list(shape)
    assert isinstance(counts, str)
    decoded = pycocotools.mask.decode({"size": size, "counts": counts})
    np.testing.assert_array_equal(decoded.astype(bool), mask)


def test_polygons_of_square_with_hole():
    mask = _square_with_hole()
    polys = masks.polygons(mask)
    assert sorted(is_hole for _, is_hole in polys) == [False, True]
    for flat, _ in polys:
        assert flat.dtype == np.float32 and flat.ndim == 1 and len(flat) >= 6
    assert _iou(_rasterise(polys, mask.shape), mask) > 0.95
    np.testing.assert_array_equal(_rasterise(polys, mask.shape, keep_hole_rims=True), mask)


def test_polygons_of_several_blobs_rasterise_back():
    mask = np.zeros((100, 100), dtype=bool)
    cv2.circle(mask.view(np.uint8), (30, 30), 20, 1, -1)
    cv2.circle(mask.view(np.uint8), (30, 30), 8, 0, -1)
    mask[60:90, 50:95] = True
    polys = masks.polygons(mask)
    assert sum(is_hole for _, is_hole in polys) == 1
    assert _iou(_rasterise(polys, mask.shape), mask) > 0.95
    np.testing.assert_array_equal(_rasterise(polys, mask.shape, keep_hole_rims=True), mask)


def test_polygons_empty_and_degenerate():
    assert masks.polygons(np.zeros((10, 10), dtype=bool)) == []
    single_pixel = np.zeros((10, 10), dtype=bool)
    single_pixel[5, 5] = True
    assert masks.polygons(single_pixel) == []
    line = np.zeros((10, 10), dtype=bool)
    line[5, 2:8] = True
    assert masks.polygons(line) == []


@pytest.mark.parametrize(("shape", "mask"), SHAPES_AND_MASKS)
def test_png_decodes_back_to_mask(shape, mask):
    decoded = cv2.imdecode(np.frombuffer(masks.png(mask), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint8 and decoded.shape == shape
    np.testing.assert_array_equal(decoded, mask.astype(np.uint8) * 255)


def test_bbox_max_is_exclusive():
    mask = np.zeros((20, 30), dtype=bool)
    mask[3:7, 5:12] = True
    assert masks.bbox(mask) == (5.0, 3.0, 12.0, 7.0)
    mask[:] = False
    mask[19, 29] = True
    assert masks.bbox(mask) == (29.0, 19.0, 30.0, 20.0)
    assert masks.bbox(np.ones((4, 9), dtype=bool)) == (0.0, 0.0, 9.0, 4.0)


def test_bbox_of_scattered_pixels():
    mask = np.zeros((50, 50), dtype=bool)
    mask[[2, 40], [45, 7]] = True
    assert masks.bbox(mask) == (7.0, 2.0, 46.0, 41.0)


def test_bbox_empty_is_none():
    assert masks.bbox(np.zeros((5, 5), dtype=bool)) is None


def test_bbox_is_fast_on_large_mask():
    mask = np.zeros((3000, 4000), dtype=bool)
    mask[1000:2000, 500:3500] = True
    start = time.perf_counter()
    assert masks.bbox(mask) == (500.0, 1000.0, 3500.0, 2000.0)
    assert time.perf_counter() - start < 0.1


def test_area():
    assert masks.area(_square_with_hole()) == 100 * 120 - 60 * 60
    assert masks.area(np.zeros((3, 3), dtype=bool)) == 0
    assert isinstance(masks.area(np.ones((3, 3), dtype=bool)), int)


def test_encode_mask_computes_only_requested_formats(monkeypatch):
    called = []
    for name in ("coco_rle", "polygons", "png"):
        real = getattr(masks, name)
        spy = lambda m, _real=real, _name=name: called.append(_name) or _real(m)  # noqa: E731
        monkeypatch.setattr(masks, name, spy)
    mask = _square_with_hole()

    encoded = encode_mask(mask, 0.875, [COCO_RLE])
    assert isinstance(encoded, EncodedMask)
    assert called == ["coco_rle"]
    assert encoded.rle == masks.coco_rle(mask)
    assert encoded.polygons is None and encoded.png is None
    assert encoded.score == 0.875
    assert encoded.bbox == (20.0, 10.0, 140.0, 110.0)
    assert encoded.area == 8400

    called.clear()
    encoded = encode_mask(mask, 0.5, {POLYGONS, PNG})
    assert sorted(called) == ["png", "polygons"]
    assert encoded.rle is None and encoded.polygons and encoded.png

    called.clear()
    encoded = encode_mask(mask, 0.5, ())
    assert called == []
    assert (encoded.rle, encoded.polygons, encoded.png) == (None, None, None)
    assert encoded.area == 8400


def test_encode_mask_empty_mask():
    encoded = encode_mask(np.zeros((8, 8), dtype=bool), 0.1, [COCO_RLE, POLYGONS, PNG])
    assert encoded.bbox is None and encoded.area == 0 and encoded.polygons == []


def test_encode_mask_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown mask formats"):
        encode_mask(np.zeros((2, 2), dtype=bool), 0.5, ["coco_rle", "svg"])
