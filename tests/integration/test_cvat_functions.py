"""The CVAT functions against a real labelgate server (demo weights): the nuclio handlers driven
with CVAT-shaped requests, and the cvat-sdk functions driven by cvat-sdk's and cvat-cli's own
machinery. Every mask is decoded with cvat-sdk's codec and must equal labelgate's own mask."""

from __future__ import annotations

import logging
import shutil

import cvat_sdk.auto_annotation as cvataa
import cvat_sdk.models as models
import numpy as np
import pytest
from cvat_cli._internal.agent_driver import set_worker_current_function
from cvat_cli._internal.agent_driver_interaction import (
    AgentInteractionFunctionDriver,
    _InteractionPromptsImpl,
    _worker_job_interact,
    _worker_job_interact_from_cache,
)
from cvat_cli._internal.common import FunctionLoader
from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl
from cvat_sdk.masks import decode_mask, encode_mask
from cvat_side import FUNCTIONS, NuclioContext, b64, decode_detector_mask, event, load_function
from PIL import Image
from reference import encode, random_image
from server_process import start_server

from labelgate.client import Client

H, W = 72, 96
IMAGE = random_image(21, H, W)
PNG = encode(IMAGE)
NAMES = ["cat", "dog", "car"]


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cvat-server"), demo_weights)
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, timeout=60) as client:
        yield client


@pytest.fixture
def nuclio_env(server, monkeypatch):
    monkeypatch.setenv("LABELGATE_SERVER", server.address)


def start(function_dir) -> tuple:
    function, context = load_function(function_dir), NuclioContext()
    function.init_context(context)
    return function, context


def labelgate_mask(client, **prompt) -> np.ndarray:
    return client.segment(PNG, **prompt).objects[0].best.to_numpy()


def names_in(phrase: str, names=NAMES) -> list[str]:
    """The labels a Grounding DINO phrase names, as whole words."""
    words = phrase.replace(".", " ").lower().split()
    return [name for name in names if name in words]


def clipped(box) -> list[float]:
    """A box inside the image, as CVAT gets it."""
    return [min(max(value, 0.0), limit) for value, limit in zip(box, (W, H, W, H))]


# --- nuclio interactor ---------------------------------------------------------------------------

PROMPTS = [
    # (CVAT request fields, the labelgate prompt they mean)
    ({"pos_points": [[40, 30]], "neg_points": [], "obj_bbox": None},
     {"points": [(40, 30)], "multimask": True}),
    ({"pos_points": [[40, 30], [60, 50]], "neg_points": [[5, 5]], "obj_bbox": None},
     {"points": [(40, 30), (60, 50), (5, 5, True)]}),
    ({"pos_points": [[40, 30]], "neg_points": [[22, 12]], "obj_bbox": [[70, 60], [20, 10]]},
     {"points": [(40, 30), (22, 12, True)], "boxes": [(20, 10, 70, 60)]}),
]


@pytest.mark.parametrize("fields, prompt", PROMPTS, ids=["one-click", "clicks", "clicks-and-box"])
def test_interactor_returns_labelgates_mask(nuclio_env, client, fields, prompt):
    interactor, context = start(FUNCTIONS / "sam2-interactor")
    reply = interactor.handler(context, event({"image": b64(PNG), **fields}))
    assert reply.status_code == 200, reply.body
    mask = np.asarray(reply.json()["mask"])
    assert mask.shape == (H, W) and set(np.unique(mask)) <= {0, 1}
    expected = labelgate_mask(client, **prompt)
    np.testing.assert_array_equal(mask.astype(bool), expected)
    # What CVAT keeps of it: cvat-sdk's RLE of the mask decodes to the same pixels.
    np.testing.assert_array_equal(decode_mask(encode_mask(mask.astype(bool)), image_width=W, image_height=H), expected)


def test_interactor_honours_obj_bbox(nuclio_env, client):
    interactor, context = start(FUNCTIONS / "sam2-interactor")
    clicks = {"pos_points": [[40, 30]], "neg_points": [[22, 12]]}
    with_box = interactor.handler(context, event({"image": b64(PNG), **clicks, "obj_bbox": [[20, 10], [70, 60]]}))
    without = interactor.handler(context, event({"image": b64(PNG), **clicks, "obj_bbox": None}))
    assert with_box.json()["mask"] != without.json()["mask"]
    box_only = interactor.handler(context, event({"image": b64(PNG), "pos_points": [], "neg_points": [],
                                                  "obj_bbox": [[20, 10], [70, 60]]}))
    np.testing.assert_array_equal(np.asarray(box_only.json()["mask"], bool),
                                  labelgate_mask(client, boxes=[(20, 10, 70, 60)]))


def test_interactor_passes_labelgates_refusal_on(nuclio_env):
    interactor, context = start(FUNCTIONS / "sam2-interactor")
    reply = interactor.handler(context, event({"image": b64(PNG), "pos_points": [[W + 40, 5]], "neg_points": []}))
    assert reply.status_code == 400 and "INVALID_ARGUMENT" in reply.json()["error"]


# --- nuclio detector -----------------------------------------------------------------------------


def test_detector_rectangles_for_the_shipped_labels(nuclio_env, client):
    detector, context = start(FUNCTIONS / "gdino-detector")
    reply = detector.handler(context, event({"image": b64(PNG), "threshold": 0.3}))
    assert reply.status_code == 200, reply.body
    shapes = reply.json()
    labels = list(context.user_data.labels)
    detections = client.detect(PNG, " . ".join(labels) + " .", box_threshold=0.3).detections
    by_box = {tuple(round(v, 3) for v in clipped(d.box)): d for d in detections}
    for shape in shapes:  # each one is a labelgate detection, under a label its phrase names
        assert shape["type"] == "rectangle" and shape["attributes"] == []
        detection = by_box[tuple(round(v, 3) for v in shape["points"])]
        assert float(shape["confidence"]) == detection.score  # str(float) round-trips exactly
        assert set(shape["label"].split()) & set(detection.label.replace(".", " ").split())
    clear = [d for d in detections if len(names_in(d.label, labels)) == 1]  # phrases naming one label outright
    found = {(tuple(round(v, 3) for v in s["points"]), s["label"]) for s in shapes}
    assert len(clear) > 0 and all((tuple(round(v, 3) for v in clipped(d.box)), names_in(d.label, labels)[0]) in found
                                  for d in clear)


@pytest.fixture
def mask_detector(tmp_path):
    """The detector folder as a user edits it: cat and dog as masks, car as polygons."""
    folder = tmp_path / "gdino-detector"
    shutil.copytree(FUNCTIONS / "gdino-detector", folder, ignore=shutil.ignore_patterns("wheels"))
    config = (folder / "function.yaml").read_text()
    start_spec, end_spec = config.index("    spec: |"), config.index("spec:\n  description")
    labels = ('    spec: |\n      [ { "id": 0, "name": "cat", "type": "mask" }, { "id": 1, "name": "dog", "type": "mask" },'
              '\n        { "id": 2, "name": "car", "type": "polygon" } ]\n\n')
    (folder / "function.yaml").write_text(config[:start_spec] + labels + config[end_spec:])
    return folder


def test_detector_masks_decode_in_cvat_to_labelgates_masks(nuclio_env, client, mask_detector):
    detector, context = start(mask_detector)
    assert context.user_data.labels == {"cat": "mask", "dog": "mask", "car": "polygon"}
    reply = detector.handler(context, event({"image": b64(PNG), "threshold": 0.3}))
    assert reply.status_code == 200, reply.body
    shapes = reply.json()
    objects = client.segment(PNG, text="cat . dog . car .", box_threshold=0.3, formats=("coco_rle", "polygons")).objects
    matched = [obj for obj in objects if len(names_in(obj.label)) == 1 and obj.best.area > 0]
    assert len(shapes) == len(matched) and {s["type"] for s in shapes} == {"mask", "polygon"}
    for shape, obj in zip(shapes, matched):
        assert shape["label"] == names_in(obj.label)[0]
        outer = [[float(v) for v in points.reshape(-1)] for points, hole in obj.best.polygons if not hole]
        assert shape["points"] in outer  # the outline, also for "convert masks to polygons"
        if shape["type"] == "mask":
            np.testing.assert_array_equal(decode_detector_mask(shape["mask"], W, H), obj.best.to_numpy())


# --- cvat-sdk functions, through cvat-sdk's and cvat-cli's own code ------------------------------


def dataset_labels(kind: str) -> list:
    """A CVAT task's labels, with the task's own ids."""
    return [models.Label(id=100 + index, name=name, type=kind, sublabels=[], attributes=[])
            for index, name in enumerate(NAMES)]


def detection_function(server, **parameters):
    return FunctionLoader("labelgate_cvat.detection_function", None,
                          {"labels": ",".join(NAMES), "server": server.address, **parameters}).load()


def test_detection_function_rectangles(server, client):
    function = detection_function(server)
    assert isinstance(function.spec, cvataa.DetectionFunctionSpec)
    context = _DetectionFunctionContextImpl(frame_name="frame.png", conf_threshold=0.3)
    shapes = function.detect(context, Image.fromarray(IMAGE))
    expected = [d for d in client.detect(PNG, "cat . dog . car .", box_threshold=0.3).detections
                if len(names_in(d.label)) == 1]
    assert len(expected) > 0 and len(shapes) == len(expected)
    for shape, detection in zip(shapes, expected):
        assert shape.type.value == "rectangle" and shape.label_id == NAMES.index(names_in(detection.label)[0])
        assert shape.points == clipped(detection.box) and shape.score == detection.score  # carried, not computed
    mapper = _AnnotationMapper(logging.getLogger("cvat"), function.spec.labels, dataset_labels("rectangle"),
                               allow_unmatched_labels=False, conv_mask_to_poly=False)
    _, remapped = mapper.validate_and_remap(shapes, 7)
    assert [(s.frame, s.label_id, s.source) for s in remapped] == [(7, 100 + NAMES.index(names_in(d.label)[0]), "auto")
                                                                    for d in expected]


@pytest.mark.parametrize("to_polygon", [False, True], ids=["masks", "polygons"])
def test_detection_function_masks(server, client, to_polygon):
    function = detection_function(server, masks=True)
    context = _DetectionFunctionContextImpl(frame_name="frame.png", conf_threshold=0.3, conv_mask_to_poly=to_polygon)
    shapes = function.detect(context, Image.fromarray(IMAGE))
    objects = [obj for obj in client.segment(PNG, text="cat . dog . car .", box_threshold=0.3,
                                             formats=("coco_rle", "polygons")).objects
               if len(names_in(obj.label)) == 1 and obj.best.area > 0]
    assert len(objects) > 0 and len(shapes) == len(objects)
    for shape, obj in zip(shapes, objects):
        assert shape.type.value == ("polygon" if to_polygon else "mask")
        if not to_polygon:
            np.testing.assert_array_equal(decode_mask(shape.points, image_width=W, image_height=H), obj.best.to_numpy())
    mapper = _AnnotationMapper(logging.getLogger("cvat"), function.spec.labels,
                               dataset_labels("polygon" if to_polygon else "mask"),
                               allow_unmatched_labels=False, conv_mask_to_poly=to_polygon)
    _, remapped = mapper.validate_and_remap(shapes, 0)
    assert len(remapped) == len(shapes)


def test_interaction_function_through_the_cvat_agent(server, client):
    function = FunctionLoader("labelgate_cvat.interaction_function", None, {"server": server.address}).load()
    assert isinstance(function.spec, cvataa.InteractionFunctionSpec)
    set_worker_current_function(function)
    AgentInteractionFunctionDriver.init_worker(None)
    frame = (1, 0, ())  # the agent's cache key: (task, frame, roi)
    first = _InteractionPromptsImpl(pos_points=((40.0, 30.0),), neg_points=((22.0, 12.0),),
                                    bounding_box=((20.0, 10.0), (70.0, 60.0)))
    [shape] = _worker_job_interact(frame, Image.fromarray(IMAGE), first)
    assert shape.type == "mask" and 0 <= float(shape.attributes[0].value) <= 1
    np.testing.assert_array_equal(decode_mask(shape.points, image_width=W, image_height=H),
                                  labelgate_mask(client, points=[(40, 30), (22, 12, True)], boxes=[(20, 10, 70, 60)]))
    # The next click on the same frame reuses the preprocessed (embedded) frame: no new image.
    second = _InteractionPromptsImpl(pos_points=((60.0, 50.0),), neg_points=(), bounding_box=None)
    [shape] = _worker_job_interact_from_cache(frame, second)
    np.testing.assert_array_equal(decode_mask(shape.points, image_width=W, image_height=H),
                                  labelgate_mask(client, points=[(60, 50)], multimask=True))
    assert len(function.client._image_ids) == 1
    function.client.close()
