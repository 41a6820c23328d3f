"""The Label Studio export of a labeled dataset (tasks.json + label_config.xml) imported by a real
Label Studio through its project Import API; what it stores is read back through its API and the
brush masks decoded with Label Studio's own codec must equal the originals.

Slow (Label Studio takes ~40 s to start), so it runs last (`runs_last`, see tests/conftest.py).
"""

from __future__ import annotations

import urllib.request

import numpy as np
import pycocotools.mask
import pytest
from label_studio_process import decode_brushes, start_label_studio
from labelgate.client.labeling.export import EXPORTERS
from labelgate.client.labeling.records import LabeledImage, LabeledObject, Provenance
from PIL import Image

pytestmark = pytest.mark.runs_last

CLASSES = ("car", "person")
PROVENANCE = Provenance(models={"sam2_demo": "sha256:bbbb"}, ontology_hash="f" * 64)


def mask_object(class_name: str, mask: np.ndarray, score: float) -> LabeledObject:
    encoded = pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return LabeledObject(class_name, box, score, class_name,
                         {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The dataset, in photos/ under Label Studio's LOCAL_FILES_DOCUMENT_ROOT (which Label Studio
    will not let a storage be itself): one image with a ring (a mask with a hole), a two-part mask
    and a boxes-only object, one nested image with nothing found."""
    root = tmp_path_factory.mktemp("local-files") / "photos"
    height, width = 70, 90
    yy, xx = np.mgrid[:height, :width]
    ring = ((xx - 30) ** 2 + (yy - 35) ** 2 < 20 ** 2) & ((xx - 30) ** 2 + (yy - 35) ** 2 >= 7 ** 2)
    parts = ((xx - 70) ** 2 + (yy - 15) ** 2 < 8 ** 2) | ((xx - 75) ** 2 + (yy - 55) ** 2 < 9 ** 2)
    records = [
        LabeledImage("street/a.png", "", width, height, "h1", "train",
                     (mask_object("person", ring, 0.9), mask_object("car", parts, 0.6),
                      LabeledObject("car", (5.0, 50.0, 25.5, 68.0), 0.35, "car"))),
        LabeledImage("street/empty/b.png", "", 40, 30, "h2", "val", ()),
    ]
    rng = np.random.default_rng(0)
    for record in records:
        (root / record.key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (record.height, record.width, 3), dtype=np.uint8)).save(root / record.key)
    return root, records, {"person": ring, "car": parts}


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory, dataset):
    root, _, _ = dataset
    running = start_label_studio(tmp_path_factory.mktemp("label-studio"), root.parent)
    running.wait_healthy()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def imported(label_studio, dataset, tmp_path_factory):
    """The exported files imported into a new project: its tasks and predictions as Label Studio stores them."""
    root, records, _ = dataset
    tasks_json, config = EXPORTERS["label-studio"]((r for r in records), CLASSES, PROVENANCE,
                                                   tmp_path_factory.mktemp("export"),
                                                   image_url="/data/local-files/?d=photos/{key}")
    project = label_studio.api("POST", "/api/projects",
                               {"title": "labelgate export", "label_config": config.read_text()})
    label_studio.api("POST", "/api/storages/localfiles",
                     {"project": project["id"], "title": "dataset", "path": str(root)})
    label_studio.api("POST", f"/api/projects/{project['id']}/import", files={"tasks.json": tasks_json.read_bytes()})
    tasks = label_studio.api("GET", "/api/tasks", params={"project": project["id"]})["tasks"]
    predictions = label_studio.api("GET", "/api/predictions", params={"project": project["id"]})
    return {"tasks": {t["data"]["key"]: t for t in tasks},
            "predictions": {p["task"]: p for p in predictions}}


def test_every_image_is_a_task_with_one_prediction_of_the_model_version(imported, dataset):
    _, records, _ = dataset
    assert sorted(imported["tasks"]) == sorted(r.key for r in records)
    for record in records:
        task = imported["tasks"][record.key]
        prediction = imported["predictions"][task["id"]]
        assert prediction["model_version"].startswith("labelgate sam2_demo@sha256:bbbb ontology:ffffffffffff")
        assert len(prediction["result"]) == len(record.objects)
        assert task["data"]["image"] == f"/data/local-files/?d=photos/{record.key}"


def test_label_studio_decodes_the_brush_masks_to_exactly_the_originals(imported, dataset):
    _, records, masks = dataset
    prediction = imported["predictions"][imported["tasks"][records[0].key]["id"]]
    brushes = [r for r in prediction["result"] if r["type"] == "brushlabels"]
    assert [r["value"]["brushlabels"] for r in brushes] == [["person"], ["car"]]
    assert [r["score"] for r in brushes] == pytest.approx([0.9, 0.6])
    decoded = decode_brushes(brushes)
    assert np.array_equal(decoded[0], masks["person"]) and np.array_equal(decoded[1], masks["car"])


def test_a_boxes_only_object_is_a_rectangle_in_percent(imported, dataset):
    _, records, _ = dataset
    prediction = imported["predictions"][imported["tasks"][records[0].key]["id"]]
    [rectangle] = [r for r in prediction["result"] if r["type"] == "rectanglelabels"]
    value = rectangle["value"]
    assert value["rectanglelabels"] == ["car"]
    assert (value["x"], value["y"], value["width"], value["height"]) == pytest.approx(
        (100 * 5.0 / 90, 100 * 50.0 / 70, 100 * 20.5 / 90, 100 * 18.0 / 70))


def test_label_studio_serves_the_task_image_from_local_files(label_studio, imported, dataset):
    root, records, _ = dataset
    task = imported["tasks"][records[1].key]
    request = urllib.request.Request(label_studio.url + task["data"]["image"],
                                     headers={"Authorization": f"Token {label_studio.token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.read() == (root / records[1].key).read_bytes()
