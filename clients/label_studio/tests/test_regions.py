"""Label Studio result regions; brush masks must survive Label Studio's own RLE codec."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from labelgate.label_studio.label_config import BRUSH, POLYGON, RECTANGLE, Control
from labelgate.label_studio.regions import brush_region, mask_to_rle, polygon_regions, rectangle_region

MASK = Control(BRUSH, "mask", "image", ("cat",))


def decode(rle, height, width):
    return decode_rle(rle).reshape(height, width, 4)


@pytest.mark.parametrize("seed, height, width", [(0, 1, 1), (1, 37, 53), (2, 240, 320)])
def test_brush_rle_round_trips_through_label_studio_sdk(seed, height, width):
    mask = np.random.default_rng(seed).random((height, width)) > 0.6
    rgba = decode(mask_to_rle(mask), height, width)
    np.testing.assert_array_equal(rgba[:, :, 3] > 0, mask)
    assert set(np.unique(rgba)) <= {0, 255}  # every channel 255 where the mask is, as the editor paints


def test_brush_rle_of_empty_and_full_masks():
    for value in (False, True):
        mask = np.full((8, 9), value)
        np.testing.assert_array_equal(decode(mask_to_rle(mask), 8, 9)[:, :, 3] > 0, mask)


def test_brush_region_carries_the_editor_fields():
    mask = np.zeros((20, 30), bool)
    mask[5:10, 3:7] = True
    region = brush_region(MASK, mask, "cat", 0.9)
    assert {k: region[k] for k in ("from_name", "to_name", "type", "original_width", "original_height", "score")} == {
        "from_name": "mask", "to_name": "image", "type": "brushlabels", "original_width": 30, "original_height": 20,
        "score": 0.9}
    assert region["value"]["format"] == "rle" and region["value"]["brushlabels"] == ["cat"]
    np.testing.assert_array_equal(decode(region["value"]["rle"], 20, 30)[:, :, 3] > 0, mask)
    assert region["id"] != brush_region(MASK, mask, "cat", 0.9)["id"]


def test_rectangle_region_is_in_percent():
    region = rectangle_region(Control(RECTANGLE, "box", "image", ("cat",)), (50, 20, 150, 60), 200, 100, "cat", 0.5)
    assert region["type"] == "rectanglelabels"
    assert region["value"] == {"x": 25.0, "y": 20.0, "width": 50.0, "height": 40.0, "rotation": 0,
                               "rectanglelabels": ["cat"]}


def test_polygon_regions_leave_out_holes_and_specks():
    outer = np.array([[0, 0], [100, 0], [100, 50]], np.float32)
    hole = np.array([[10, 10], [20, 10], [20, 20]], np.float32)
    speck = np.array([[5, 5], [6, 6]], np.float32)
    regions = polygon_regions(Control(POLYGON, "outline", "image", ("cat",)), [(outer, False), (hole, True),
                                                                                (speck, False)], 200, 100, "cat", 0.7)
    assert len(regions) == 1
    assert regions[0]["value"] == {"points": [[0, 0], [50, 0], [50, 50]], "closed": True, "polygonlabels": ["cat"]}
