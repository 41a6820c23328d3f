"""The CVAT detectors on a concept model: a real labelgate server serving a tiny random-weight SAM 3
(named "sam3", as the sam3-detector's function.yaml says) next to the demo pair. The task's labels
are the concepts, one phrase each; the nuclio detector and the cvat-sdk detection function (driven
by cvat-sdk's own context and label mapper) return every instance labelgate finds, as masks that
decode in CVAT to labelgate's pixels, polygons that are their outlines, or boxes."""

from __future__ import annotations

import logging
import shutil

import cvat_sdk.models as models
import numpy as np
import pytest
from cvat_cli._internal.common import FunctionLoader
from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl
from cvat_sdk.masks import decode_mask
from cvat_side import FUNCTIONS, NuclioContext, b64, decode_detector_mask, event, load_function
from PIL import Image
from reference import encode, random_image
from server_process import start_server

from labelgate.client import Client
from labelgate.models.sam3.demo import write_sam3_demo_model
from labelgate_cvat.detections import outline

H, W = 72, 96
IMAGE = random_image(7, H, W)
PNG = encode(IMAGE)
NAMES = ["cat", "dog", "Traffic_light"]  # the task's labels; "Traffic_light" is said "traffic light"
CAPTION = "cat . dog . traffic light ."
THRESHOLD = 0.001  # random weights score low: keep every instance the model proposes


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory):
    sam3_dir = write_sam3_demo_model(tmp_path_factory.mktemp("sam3") / "sam3-demo")
    running = start_server(tmp_path_factory.mktemp("cvat-concepts-server"), demo_weights,
                           "--model", f"sam3=sam3:{sam3_dir}")
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def instances(server):
    """What labelgate itself answers for the task's labels: every instance, best first."""
    with Client(server.address, timeout=60) as client:
        objects = client.segment(PNG, text=CAPTION, model="sam3", box_threshold=THRESHOLD,
                                 formats=("coco_rle", "polygons")).objects
    assert {obj.label for obj in objects} == {"cat", "dog", "traffic light"}  # each phrase, as it was sent
    return objects


def label_of(obj) -> str:
    return {"cat": "cat", "dog": "dog", "traffic light": "Traffic_light"}[obj.label]


def shown_as(kind: str, obj) -> bool:
    """Whether CVAT gets a shape of this kind for the instance: an empty mask, or one without a
    polygon of 3 or more points, has none to give."""
    return {"rectangle": True, "mask": obj.best.area > 0, "polygon": outline(obj.best) is not None}[kind]


def clipped(box) -> list[float]:
    return [min(max(value, 0.0), limit) for value, limit in zip(box, (W, H, W, H))]


# --- nuclio detector -----------------------------------------------------------------------------


@pytest.fixture
def sam3_detector(tmp_path, server, monkeypatch):
    """The sam3-detector folder as a user edits it: cat as masks, dog as polygons, traffic light as
    boxes; LABELGATE_CONCEPT_MODEL as its function.yaml sets it, naming this server's model."""
    folder = tmp_path / "sam3-detector"
    shutil.copytree(FUNCTIONS / "sam3-detector", folder, ignore=shutil.ignore_patterns("wheels"))
    config = (folder / "function.yaml").read_text()
    start_spec, end_spec = config.index("    spec: |"), config.index("spec:\n  description")
    labels = ('    spec: |\n      [ { "id": 0, "name": "cat", "type": "mask" }, { "id": 1, "name": "dog", "type": "polygon" },'
              '\n        { "id": 2, "name": "Traffic_light", "type": "rectangle" } ]\n\n')
    (folder / "function.yaml").write_text(config[:start_spec] + labels + config[end_spec:])
    monkeypatch.setenv("LABELGATE_SERVER", server.address)
    monkeypatch.setenv("LABELGATE_CONCEPT_MODEL", "sam3")
    function, context = load_function(folder), NuclioContext()
    function.init_context(context)
    return function, context


def test_nuclio_detector_returns_every_instance_as_the_labels_type(sam3_detector, instances):
    function, context = sam3_detector
    reply = function.handler(context, event({"image": b64(PNG), "threshold": THRESHOLD}))
    assert reply.status_code == 200, reply.body
    shapes = reply.json()
    kinds = {"cat": "mask", "dog": "polygon", "Traffic_light": "rectangle"}
    expected = [obj for obj in instances if shown_as(kinds[label_of(obj)], obj)]
    assert len(shapes) == len(expected) > 0 and {s["type"] for s in shapes} == {"mask", "polygon", "rectangle"}
    for shape, obj in zip(shapes, expected):
        label = label_of(obj)
        assert (shape["label"], shape["type"]) == (label, kinds[label])
        assert float(shape["confidence"]) == obj.detection_score  # str(float) round-trips exactly
        if shape["type"] == "mask":
            np.testing.assert_array_equal(decode_detector_mask(shape["mask"], W, H), obj.best.to_numpy())
            assert shape["points"] == outline(obj.best)  # for "convert masks to polygons"
        elif shape["type"] == "polygon":
            assert shape["points"] == outline(obj.best)
        else:
            assert shape["points"] == clipped(obj.prompt_box)


def test_nuclio_detector_names_an_unknown_concept_model(sam3_detector, monkeypatch):
    function, context = sam3_detector
    monkeypatch.setenv("LABELGATE_CONCEPT_MODEL", "no_such_model")
    function.init_context(context)
    reply = function.handler(context, event({"image": b64(PNG)}))
    assert reply.status_code == 502 and "NOT_FOUND" in reply.json()["error"] and "no_such_model" in reply.json()["error"]


# --- cvat-sdk detection function -----------------------------------------------------------------


def task_labels(kind: str) -> list:
    """The CVAT task's labels, with the task's own ids."""
    return [models.Label(id=100 + index, name=name, type=kind, sublabels=[], attributes=[])
            for index, name in enumerate(NAMES)]


def detection_function(server, **parameters):
    """The function as `cvat-cli task auto-annotate --function-module ... -p ...` loads it."""
    return FunctionLoader("labelgate_cvat.detection_function", None,
                          {"labels": ",".join(NAMES), "server": server.address, **parameters}).load()


@pytest.mark.parametrize("to_polygon", [False, True], ids=["masks", "polygons"])
def test_detection_function_masks_of_every_instance(server, instances, to_polygon):
    function = detection_function(server, concept_model="sam3")
    context = _DetectionFunctionContextImpl(frame_name="frame.png", conf_threshold=THRESHOLD, conv_mask_to_poly=to_polygon)
    shapes = function.detect(context, Image.fromarray(IMAGE))
    kind = "polygon" if to_polygon else "mask"
    expected = [obj for obj in instances if shown_as(kind, obj)]
    assert len(shapes) == len(expected) > 0
    for shape, obj in zip(shapes, expected):
        assert shape.label_id == NAMES.index(label_of(obj)) and shape.score == obj.detection_score
        if to_polygon:
            assert shape.type.value == "polygon" and shape.points == outline(obj.best)
        else:
            assert shape.type.value == "mask"
            np.testing.assert_array_equal(decode_mask(shape.points, image_width=W, image_height=H), obj.best.to_numpy())
    mapper = _AnnotationMapper(logging.getLogger("cvat"), function.spec.labels, task_labels(kind),
                               allow_unmatched_labels=False, conv_mask_to_poly=to_polygon)
    _, remapped = mapper.validate_and_remap(shapes, 3)
    assert [(s.frame, s.label_id, s.type.value) for s in remapped] == [
        (3, 100 + NAMES.index(label_of(obj)), kind) for obj in expected]


def test_detection_function_boxes_from_the_concept_model_named_by_the_environment(server, instances, monkeypatch):
    monkeypatch.setenv("LABELGATE_CONCEPT_MODEL", "sam3")
    function = detection_function(server, masks=False)
    context = _DetectionFunctionContextImpl(frame_name="frame.png", conf_threshold=THRESHOLD)
    shapes = function.detect(context, Image.fromarray(IMAGE))
    assert [(s.type.value, s.label_id, s.points) for s in shapes] == [
        ("rectangle", NAMES.index(label_of(obj)), clipped(obj.prompt_box)) for obj in instances]
    mapper = _AnnotationMapper(logging.getLogger("cvat"), function.spec.labels, task_labels("rectangle"),
                               allow_unmatched_labels=False, conv_mask_to_poly=False)
    _, remapped = mapper.validate_and_remap(shapes, 0)
    assert len(remapped) == len(shapes)
