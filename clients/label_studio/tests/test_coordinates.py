"""Percent of the original image (Label Studio) <-> pixels (labelgate)."""

import pytest

from labelgate.label_studio.coordinates import box_to_percent, box_to_pixels, point_to_pixels, points_to_percent


def test_points_scale_by_the_width_and_the_height_separately():
    assert point_to_pixels({"x": 25.0, "y": 50.0}, 640, 480) == (160.0, 240.0)
    assert point_to_pixels({"x": 33.3, "y": 61.7}, 320, 240) == pytest.approx((106.56, 148.08))


def test_points_on_or_past_the_edge_stay_in_the_image():
    assert point_to_pixels({"x": 100.0, "y": 100.0}, 640, 480) == (640.0, 480.0)
    assert point_to_pixels({"x": -0.5, "y": 100.2}, 640, 480) == (0.0, 480.0)


def test_a_box_is_top_left_plus_size():
    value = {"x": 10.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0}
    assert box_to_pixels(value, 500, 333) == pytest.approx((50.0, 83.25, 300.0, 249.75))


def test_a_rotated_box_becomes_the_upright_box_around_it():
    # 90 degrees clockwise about the top-left corner (100, 100): the 200 x 50 box hangs below-left of it.
    value = {"x": 10.0, "y": 10.0, "width": 20.0, "height": 5.0, "rotation": 90}
    assert box_to_pixels(value, 1000, 1000) == pytest.approx((50.0, 100.0, 100.0, 300.0))


def test_boxes_round_trip_through_percent():
    box = (12.5, 40.0, 300.25, 199.0)
    value = box_to_percent(box, 500, 200)
    assert value == pytest.approx({"x": 2.5, "y": 20.0, "width": 57.55, "height": 79.5, "rotation": 0})
    assert box_to_pixels(value, 500, 200) == pytest.approx(box)


def test_polygon_points_go_to_percent():
    assert points_to_percent([(0, 0), (250, 100), (500, 200)], 500, 200) == [[0, 0], [50, 50], [100, 100]]
