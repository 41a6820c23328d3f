"""CVAT formats without a server: label matching, the detector mask encoding (decoded the way CVAT
does), polygons, the function.yaml specs, and the requests the handlers refuse."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from cvat_cli._internal.agent_driver_interaction import AgentInteractionFunctionDriver
from cvat_side import FUNCTIONS, NuclioContext, decode_detector_mask, event, load_function

from labelgate.client import Mask
from labelgate_cvat import detection_function, interaction_function
from labelgate_cvat.detections import caption, label_for, outline
from labelgate_cvat.nuclio import cvat_mask, labels_from_function_yaml
from labelgate_cvat.prompts import box_from_corners, segment_prompt

NAMES = ["cat", "dog", "Traffic_light", "person"]


@pytest.mark.parametrize("phrase, label", [
    ("cat", "cat"), ("cat [SEP]", "cat"), ("  Dog. ", "dog"), ("traffic light", "Traffic_light"),
    ("traffic", "Traffic_light"), ("person.. [SEP]", "person"),
    ("cat dog", None), ("cat. dog.. [SEP]", None), ("[SEP]", None), ("...", None), ("", None), ("car", None),
])
def test_each_phrase_gets_the_one_label_it_names(phrase, label):
    assert label_for(phrase, NAMES) == label


def test_caption():
    assert caption(NAMES) == "cat . dog . traffic light . person ."


def test_a_label_with_a_dot_stays_one_phrase_and_maps_back():
    names = ["St. Bernard", "dog?", "cat"]
    assert caption(names) == "st bernard . dog . cat ."
    assert label_for("st bernard", names) == "St. Bernard" and label_for("dog", names) == "dog?"


def test_detector_mask_decodes_in_cvat_to_the_same_pixels():
    bitmap = np.zeros((30, 40), dtype=bool)
    bitmap[5:20, 7:31] = True
    bitmap[10:12, 15:18] = False
    bitmap[25, 39] = True  # touches the right edge: the corners are inclusive
    encoded = cvat_mask(bitmap)
    assert encoded[-4:] == [7, 5, 39, 25]
    assert len(encoded) == 4 + (39 - 7 + 1) * (25 - 5 + 1) and set(encoded[:-4]) == {0, 1}
    np.testing.assert_array_equal(decode_detector_mask(encoded, width=40, height=30), bitmap)
    assert cvat_mask(np.zeros((3, 3), dtype=bool)) is None


def test_outline_is_the_largest_outer_polygon():
    small = np.array([[0, 0], [2, 0], [2, 2]], np.float32)
    large = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], np.float32)
    hole = np.array([[0, 0], [50, 0], [50, 50]], np.float32)
    mask = Mask(score=1, bbox=None, area=0, rle=None, png=None,
                polygons=[(small, False), (large, False), (hole, True), (large[:2], False)])
    assert outline(mask) == [0, 0, 10, 0, 10, 10, 0, 10]
    assert outline(Mask(score=1, bbox=None, area=0, rle=None, png=None, polygons=[(hole, True)])) is None


def test_shipped_detector_labels_are_what_cvat_reads():
    labels = labels_from_function_yaml(FUNCTIONS / "gdino-detector" / "function.yaml")
    assert labels == {"person": "rectangle", "car": "rectangle", "bicycle": "rectangle", "dog": "rectangle",
                      "cat": "rectangle", "traffic light": "rectangle"}


def test_shipped_sam3_detector_asks_a_concept_model_for_masks(monkeypatch):
    config = yaml.safe_load((FUNCTIONS / "sam3-detector" / "function.yaml").read_text())
    assert {"name": "LABELGATE_CONCEPT_MODEL", "value": "sam3"} in config["spec"]["env"]
    labels = labels_from_function_yaml(FUNCTIONS / "sam3-detector" / "function.yaml")
    assert set(labels.values()) == {"mask"} and "traffic light" in labels
    monkeypatch.setenv("LABELGATE_SERVER", "127.0.0.1:1")  # never reached
    monkeypatch.setenv("LABELGATE_CONCEPT_MODEL", "concepts")  # what nuclio sets from the function.yaml env
    function, context = load_function(FUNCTIONS / "sam3-detector"), NuclioContext()
    function.init_context(context)
    assert context.user_data.concept_model == "concepts"
    monkeypatch.delenv("LABELGATE_CONCEPT_MODEL")
    function.init_context(context)
    assert context.user_data.concept_model == ""  # unset: Grounding DINO


def test_nuclio_interactor_and_sdk_interaction_function_accept_the_same_prompts():
    """The function.yaml annotations CVAT reads equal what cvat-cli registers for our SDK function."""
    config = yaml.safe_load((FUNCTIONS / "sam2-interactor" / "function.yaml").read_text())
    annotations = config["metadata"]["annotations"]
    assert annotations["type"] == "interactor" and config["spec"]["handler"] == "main:handler"
    fields = AgentInteractionFunctionDriver.get_remote_function_fields(interaction_function.create().spec)
    assert fields == {key: annotations[key] for key in fields}
    assert fields == {"min_pos_points": 1, "min_neg_points": 0, "startswith_box_optional": True}


def test_detection_function_labels_and_types():
    spec = detection_function.create(labels=" car, traffic light ").spec
    assert [(label.name, label.id, label.type) for label in spec.labels] == [("car", 0, "rectangle"),
                                                                              ("traffic light", 1, "rectangle")]
    assert {label.type for label in detection_function.create(labels="car", masks=True).spec.labels} == {"mask"}
    for bad in ("", " , ", "car,car"):
        with pytest.raises(ValueError, match="labels"):
            detection_function.create(labels=bad)


def test_detection_function_with_a_concept_model_gives_masks_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("LABELGATE_CONCEPT_MODEL", raising=False)
    def types(**options) -> set:
        return {label.type for label in detection_function.create(labels="car,person", **options).spec.labels}
    assert types(concept_model="sam3") == {"mask"} and types(concept_model="sam3", masks=False) == {"rectangle"}
    monkeypatch.setenv("LABELGATE_CONCEPT_MODEL", "sam3")
    assert types() == {"mask"} and types(concept_model="") == {"rectangle"}  # the parameter wins over the variable


@pytest.mark.parametrize("pos, neg, bbox, message", [
    ([], [], None, "no prompt"),
    ([], [[1, 2]], None, "no prompt"),
    ([[1]], [], None, r"pos_points\[0\]"),
    ([[1, float("nan")]], [], None, "finite"),
    ("12", [], None, "list of"),
    ([[1, 2]], [], [[1, 2]], "obj_bbox"),
])
def test_malformed_prompts(pos, neg, bbox, message):
    with pytest.raises(ValueError, match=message):
        segment_prompt(None, b"", pos, neg, bbox)  # refused before any call


def test_box_corners_in_any_order():
    assert box_from_corners([[50, 40], [10, 5]]) == (10, 5, 50, 40)


@pytest.mark.parametrize("body, message", [
    (b"not json", "not JSON"), ([1, 2], "JSON object"), ({}, "no 'image'"), ({"image": "!!"}, "base64"),
])
def test_handlers_answer_400_to_malformed_requests(body, message, monkeypatch):
    monkeypatch.setenv("LABELGATE_SERVER", "127.0.0.1:1")  # never reached
    for name in ("sam2-interactor", "gdino-detector", "sam3-detector"):
        function, context = load_function(FUNCTIONS / name), NuclioContext()
        function.init_context(context)
        reply = function.handler(context, event(body))
        assert reply.status_code == 400 and message in reply.json()["error"]


def test_detector_threshold_must_be_a_probability(monkeypatch):
    monkeypatch.setenv("LABELGATE_SERVER", "127.0.0.1:1")
    function, context = load_function(FUNCTIONS / "gdino-detector"), NuclioContext()
    function.init_context(context)
    reply = function.handler(context, event({"image": "aGk=", "threshold": 3}))
    assert reply.status_code == 400 and "between 0 and 1" in reply.json()["error"]
