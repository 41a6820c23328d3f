"""Mask-IoU NMS of concept instances: per label, best score first, capped."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.models.backend import ConceptInstance
from labelgate.models.instance_nms import mask_iou_matrix, suppress


def _instance(y0, y1, x0, x1, score, label="car", size=(20, 20)) -> ConceptInstance:
    mask = np.zeros(size, bool)
    mask[y0:y1, x0:x1] = True
    return ConceptInstance(mask, (float(x0), float(y0), float(x1), float(y1)), score, label)


def test_iou_matrix_counts_pixels():
    a, b = _instance(0, 10, 0, 10, 0.9).mask, _instance(0, 10, 5, 15, 0.8).mask
    iou = mask_iou_matrix([a, b, np.zeros((20, 20), bool)])
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[0, 0] == 1.0 and iou[2, 2] == 0.0


def test_overlapping_duplicates_of_one_label_are_dropped_best_first():
    best, duplicate, apart = _instance(0, 10, 0, 10, 0.9), _instance(0, 10, 1, 11, 0.95), _instance(12, 20, 12, 20, 0.5)
    assert suppress([best, duplicate, apart], 0.5, 100) == [duplicate, apart]
    assert suppress([best, duplicate, apart], 1.0, 100) == [duplicate, best, apart]  # 1.0 keeps all


def test_other_labels_are_not_suppressed_and_the_cap_keeps_the_best():
    car, person = _instance(0, 10, 0, 10, 0.9, "car"), _instance(0, 10, 0, 10, 0.8, "person")
    assert suppress([person, car], 0.5, 100) == [car, person]
    assert suppress([person, car], 0.5, 1) == [car]
    assert suppress([], 0.5, 10) == []
