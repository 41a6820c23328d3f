"""Greedy NMS of `labelgate label` across prompts: by box IoU and by mask IoU (pycocotools), and
the assembly of stored prompt results into classes (min area, class-specific then class-agnostic)."""

from __future__ import annotations

import numpy as np
import pycocotools.mask
import pytest
from labelgate.client.labeling.assemble import assemble
from labelgate.client.labeling.nms import box_iou, keep_after_nms, mask_iou, suppress
from labelgate.client.labeling.ontology import parse_ontology
from labelgate.client.labeling.plan import ModelChoice, prompt_tasks
from labelgate.client.labeling.records import LabeledObject


def _rle(mask: np.ndarray) -> dict:
    rle = pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(n) for n in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _square(x0, y0, x1, y1, shape=(40, 40)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_box_iou_by_hand():
    iou = box_iou(np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 5]]))
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[0, 2] == 0 and iou[0, 0] == 1
    assert iou[3, 3] == 0  # an empty box overlaps nothing, not even itself


def test_mask_iou_counts_pixels_not_boxes():
    ring = _square(0, 0, 20, 20) & ~_square(5, 5, 15, 15)  # same box as the full square, 300 of its 400 pixels
    iou = mask_iou([_rle(_square(0, 0, 20, 20)), _rle(ring)])
    assert iou[0, 1] == pytest.approx(300 / 400)


def test_keep_after_nms_is_greedy_by_score_with_stable_ties():
    iou = np.array([[1, .6, 0], [.6, 1, .6], [0, .6, 1]])
    assert keep_after_nms([0.5, 0.9, 0.5], iou, 0.5) == [1]
    assert keep_after_nms([0.9, 0.5, 0.8], iou, 0.5) == [0, 2]
    assert keep_after_nms([0.5, 0.5, 0.5], iou, 0.7) == [0, 1, 2]


def test_suppress_by_mask_keeps_a_box_overlap_that_does_not_share_pixels():
    left = _square(0, 0, 20, 20) & (np.add.outer(np.arange(40), np.arange(40)) < 20)  # triangles in one box
    right = _square(0, 0, 20, 20) & ~left
    a = LabeledObject("x", (0, 0, 20, 20), 0.9, "p", _rle(left))
    b = LabeledObject("x", (0, 0, 20, 20), 0.8, "p", _rle(right))
    assert suppress([a, b], 0.5, "mask") == [a, b]
    assert suppress([a, b], 0.5, "box") == [a]


def _raw(box, score, mask=None):
    return {"box": list(box), "score": score, "rle": _rle(mask) if mask is not None else None}


def test_assembly_applies_min_area_then_class_nms_then_agnostic_nms():
    ontology = parse_ontology({
        "nms": {"iou": 0.5, "agnostic_iou": 0.5},
        "classes": {"car": {"prompts": ["a car", "an automobile"], "min_area": 50}, "truck": "a truck"},
    })
    models = ModelChoice("sam2", "gd", False, {"sam2": "v1", "gd": "v2"})
    tasks = prompt_tasks(ontology, models)
    key = {prompt: task.key for (_, prompt), task in tasks.items()}
    results = {
        key["a car"]: [_raw((0, 0, 20, 20), 0.7, _square(0, 0, 20, 20)), _raw((30, 30, 35, 35), 0.9, _square(30, 30, 35, 35))],
        key["an automobile"]: [_raw((0, 0, 20, 19), 0.8, _square(0, 0, 20, 19))],
        key["a truck"]: [_raw((0, 0, 20, 20), 0.75, _square(0, 0, 20, 20)), _raw((22, 0, 30, 10), 0.6, _square(22, 0, 30, 10))],
    }
    objects = assemble(ontology, tasks, results)
    # the 25-pixel car is under min_area; "an automobile" (0.8) beats "a car" (0.7) for the same car; the
    # truck on the same pixels (0.75) loses to it across classes; the other truck stays.
    assert [(o.class_name, o.prompt, o.score) for o in objects] == [("car", "an automobile", 0.8), ("truck", "a truck", 0.6)]


def test_boxes_only_classes_drop_masks_and_use_box_area():
    ontology = parse_ontology({"classes": {"sign": {"prompts": "a sign", "output": "boxes", "min_area": 50}}})
    tasks = prompt_tasks(ontology, ModelChoice("sam3", "", True, {"sam3": "v"}))
    [task] = tasks.values()
    assert task.call == "segment" and task.detector_model == ""  # SAM 3 finds boxes with masks anyway
    results = {task.key: [_raw((0, 0, 10, 10), 0.9, _square(0, 0, 10, 10)), _raw((0, 0, 5, 5), 0.9, _square(0, 0, 5, 5))]}
    [kept] = assemble(ontology, tasks, results)
    assert kept.rle is None and kept.box == (0, 0, 10, 10)
