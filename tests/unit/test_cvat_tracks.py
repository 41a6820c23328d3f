"""The shape conversions of the CVAT trackers (labelgate_cvat.tracks) that need no server."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate_cvat.tracks import clipped_box, polygon_mask


def test_a_rectangle_past_the_frame_edges_is_cut_to_the_frame():
    assert clipped_box([-5, 3, 120, 70.5], 96, 64) == [0.0, 3.0, 96.0, 64.0]
    assert clipped_box([10, 20, 30, 40], 96, 64) == [10.0, 20.0, 30.0, 40.0]


def test_a_polygon_is_rasterised_with_its_outline():
    mask = polygon_mask([2, 2, 6, 2, 6, 6, 2, 6], 10, 12)
    expected = np.zeros((10, 12), bool)
    expected[2:7, 2:7] = True
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="3 or more"):
        polygon_mask([1, 1, 5, 5], 10, 12)
