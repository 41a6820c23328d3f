"""The dataset exporters (labelgate.client.labeling.export), each output read back by its owner's
library: pycocotools for COCO and CVAT's COCO, supervision's dataset loaders for COCO and YOLO.
(Label Studio's import of tasks.json runs against a real Label Studio in
tests/integration/test_label_studio_import.py.)

Masks must come back exactly from RLE. From polygons, the pixels that differ are bounded: the
Douglas-Peucker outline stays within `tolerance` px of the exact pixel-edge outline, so what it
adds or removes lies in a band `tolerance` px wide on either side of the mask's boundary (at most
2 * tolerance * perimeter pixels), and a reader that fills polygons by pixel centre (pycocotools) or
boundary-inclusively (cv2, in supervision) moves at most one more pixel per unit of boundary on each
side (2 * perimeter). The perimeter is the count of pixel edges between mask and background, never
less than the outline's length.
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pycocotools.mask
import pytest
import supervision as sv
import yaml
from labelgate.client.labeling.export import EXPORTERS
from labelgate.client.labeling.export.contact_sheet import sample_images
from labelgate.client.labeling.export.polygons import mask_to_polygons, merge_polygons
from labelgate.client.labeling.export.yolo import flat_name
from labelgate.client.labeling.exporting import exporter_options
from labelgate.client.labeling.ontology import parse_ontology
from labelgate.client.labeling.records import LabeledImage, LabeledObject, Provenance
from PIL import Image
from pycocotools.coco import COCO

CLASSES = ("car", "person", "dog")
PROVENANCE = Provenance(models={"grounding_dino_demo": "sha256:aaaa", "sam2_demo": "sha256:bbbb"},
                        ontology_hash="0123456789abcdef" * 4, parameters={"box_threshold": 0.3})
TOLERANCE = 1.0
RING_HOLE = (60, 50)  # row, column: the centre of the ring in the fixture


def disc(height, width, cx, cy, radius, inner=0.0) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    distance2 = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2
    return (distance2 < radius ** 2) & (distance2 >= inner ** 2)


def rle(mask: np.ndarray) -> dict:
    encoded = pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def masked(class_name: str, mask: np.ndarray, score: float) -> LabeledObject:
    return LabeledObject(class_name, box_of(mask), score, f"a {class_name}", rle(mask))


def perimeter(mask: np.ndarray) -> int:
    padded = np.pad(mask, 1)
    return int(np.count_nonzero(padded[1:, :] != padded[:-1, :]) + np.count_nonzero(padded[:, 1:] != padded[:, :-1]))


def allowed_difference(mask: np.ndarray, tolerance: float, bridge_pixels: int = 0) -> float:
    """The module docstring's bound, plus the pixels a boundary-inclusive fill paints on the cuts
    joining an object's parts (one pixel per unit of cut length, and its end)."""
    return (2 * tolerance + 2) * perimeter(mask) + bridge_pixels


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Image files under a root (nested keys) and their records: masks with a hole and with two
    parts, a boxes-only object, an image with nothing found, both splits."""
    root = tmp_path_factory.mktemp("dataset")
    h1, w1 = 120, 160
    ring = disc(h1, w1, 50, 60, 35, inner=12)  # a hole
    car = disc(h1, w1, 120, 40, 22)
    h2, w2 = 90, 100
    two_parts = disc(h2, w2, 25, 45, 18) | disc(h2, w2, 72, 45, 16)  # 12 px apart
    records = [
        LabeledImage("top.png", str(root / "top.png"), w1, h1, "h1", "train", (
            masked("person", ring, 0.91), masked("car", car, 0.62),
            LabeledObject("dog", (100.0, 80.0, 150.5, 115.0), 0.4, "a dog"))),
        LabeledImage("nested/deeper/two.png", str(root / "nested/deeper/two.png"), w2, h2, "val", "val",
                     (masked("car", two_parts, 0.77),)),
        LabeledImage("nested/nothing.png", str(root / "nested/nothing.png"), 64, 48, "h3", "train", ()),
    ]
    rng = np.random.default_rng(0)
    for record in records:
        path = root / record.key
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (record.height, record.width, 3), dtype=np.uint8)).save(path)
    return root, records


def stream(records):
    """A one-pass iterator, as the job hands exporters (a list would hide a second pass)."""
    return (record for record in records)


def masks_of(record: LabeledImage) -> list[np.ndarray]:
    return [pycocotools.mask.decode({"size": o.rle["size"], "counts": o.rle["counts"].encode()}).astype(bool)
            for o in record.objects if o.rle is not None]


# Polygons from masks -------------------------------------------------------------------------

def coco_fill(polygons, height, width) -> np.ndarray:
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    rles = pycocotools.mask.frPyObjects([p.reshape(-1).tolist() for p in polygons], height, width)
    return pycocotools.mask.decode(pycocotools.mask.merge(rles)).astype(bool)


def test_unsimplified_polygons_fill_back_to_exactly_the_mask_holes_and_touching_corners_included():
    rng = np.random.default_rng(1)
    for _ in range(200):
        height, width = (int(v) for v in rng.integers(1, 24, 2))
        mask = rng.random((height, width)) < rng.random()
        polygons = mask_to_polygons(mask)
        assert np.array_equal(coco_fill(polygons, height, width), mask)
        merged = merge_polygons(polygons)
        assert np.array_equal(coco_fill([merged] if merged is not None else [], height, width), mask)


@pytest.mark.parametrize("tolerance", [0.5, 1.0, 2.0])
def test_simplified_polygons_stay_within_the_tolerance_bound_and_drop_vertices(tolerance):
    mask = disc(200, 220, 100, 95, 80, inner=25) | disc(200, 220, 200, 180, 12)
    exact, simplified = mask_to_polygons(mask), mask_to_polygons(mask, tolerance)
    assert len(simplified) == len(exact) == 2
    assert sum(map(len, simplified)) < sum(map(len, exact))
    difference = np.count_nonzero(coco_fill(simplified, *mask.shape) != mask)
    assert difference <= allowed_difference(mask, tolerance)
    # Douglas-Peucker's own promise: every vertex of the exact outline within `tolerance` of the result
    segments = np.concatenate([np.stack([p, np.roll(p, -1, axis=0)], axis=1) for p in simplified])
    corners = np.concatenate(exact)
    assert distance_to_segments(corners, segments).max() <= tolerance + 1e-9


def distance_to_segments(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    a, b = segments[None, :, 0], segments[None, :, 1]
    ab, ap = b - a, points[:, None] - a
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    return np.sqrt(((ap - t[..., None] * ab) ** 2).sum(-1)).min(axis=1)


# COCO --------------------------------------------------------------------------------------

def test_coco_rle_reads_back_exactly_with_pycocotools(dataset, tmp_path):
    _, records = dataset
    paths = EXPORTERS["coco"](stream(records), CLASSES, PROVENANCE, tmp_path, mask_format="rle")
    assert sorted(p.name for p in paths) == ["instances_train.json", "instances_val.json"]
    assert not [p for p in tmp_path.iterdir() if p.suffix not in (".json",)]  # no temporary files left
    for path in paths:
        split = path.stem.removeprefix("instances_")
        coco = COCO(str(path))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
        assert coco.dataset["info"]["labelgate"]["models"] == PROVENANCE.models
        assert coco.dataset["info"]["labelgate"]["ontology_hash"] == PROVENANCE.ontology_hash
        expected = [r for r in records if r.split == split]
        assert [img["file_name"] for img in coco.loadImgs(coco.getImgIds())] == [r.key for r in expected]
        for image_id, record in zip(coco.getImgIds(), expected):
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            assert len(annotations) == len(record.objects)
            for annotation, obj in zip(annotations, record.objects):
                assert CLASSES[annotation["category_id"] - 1] == obj.class_name
                assert annotation["score"] == pytest.approx(obj.score, abs=1e-5)
                x0, y0, x1, y1 = obj.box
                assert annotation["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
                assert annotation["iscrowd"] == 0
                if obj.rle is None:
                    assert annotation["segmentation"] == [] and annotation["area"] == (x1 - x0) * (y1 - y0)
                else:
                    mask = masks_of(LabeledImage("k", "s", 0, 0, "", "", (obj,)))[0]
                    assert np.array_equal(coco.annToMask(annotation).astype(bool), mask)
                    assert annotation["area"] == mask.sum()


def test_coco_polygons_read_back_within_the_bound_with_pycocotools(dataset, tmp_path):
    _, records = dataset
    paths = EXPORTERS["coco"](stream(records), CLASSES, PROVENANCE, tmp_path, mask_format="polygons",
                              polygon_tolerance=TOLERANCE)
    checked = 0
    for path in paths:
        coco = COCO(str(path))
        by_key = {r.key: r for r in records}
        for image in coco.loadImgs(coco.getImgIds()):
            record = by_key[image["file_name"]]
            annotations = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])) if a["segmentation"]]
            for annotation, mask in zip(annotations, masks_of(record), strict=True):
                assert isinstance(annotation["segmentation"], list)
                assert all(len(polygon) >= 6 for polygon in annotation["segmentation"])
                read_back = coco.annToMask(annotation).astype(bool)
                assert np.count_nonzero(read_back != mask) <= allowed_difference(mask, TOLERANCE)
                if CLASSES[annotation["category_id"] - 1] == "person":  # the ring: its hole stays a hole
                    assert not mask[RING_HOLE] and not read_back[RING_HOLE]
                checked += 1
    assert checked == 3


def test_each_class_is_simplified_with_its_own_tolerance(dataset, tmp_path):
    """Per-class tolerances: the exact class reads back pixel for pixel, the coarse one with fewer
    vertices within its own (larger) bound; an ontology's classes reach the exporters this way."""
    _, records = dataset
    ontology = parse_ontology({"classes": {"person": {"prompts": "a person", "polygon_tolerance": 0},
                                           "car": {"prompts": "a car", "polygon_tolerance": 3},
                                           "dog": {"prompts": "a dog", "output": "boxes"}}})
    options = exporter_options(ontology, {"mask_format": "polygons"})
    [path] = [p for p in EXPORTERS["coco"](stream(records[:1]), CLASSES, PROVENANCE, tmp_path, **options)
              if p.name == "instances_train.json"]
    coco = COCO(str(path))
    by_class = {CLASSES[a["category_id"] - 1]: a for a in coco.loadAnns(coco.getAnnIds()) if a["segmentation"]}
    person, car = masks_of(records[0])
    assert np.array_equal(coco.annToMask(by_class["person"]).astype(bool), person)
    coarse = np.count_nonzero(coco.annToMask(by_class["car"]).astype(bool) != car)
    assert 0 < coarse <= allowed_difference(car, 3)
    exact_car = mask_to_polygons(car)
    assert sum(len(p) for p in by_class["car"]["segmentation"]) < sum(p.size for p in exact_car)

    EXPORTERS["yolo"](stream(records[:1]), CLASSES, PROVENANCE, tmp_path / "yolo", link="none", **options)
    lines = (tmp_path / "yolo" / "labels" / "train" / "top.txt").read_text().splitlines()
    vertices = {CLASSES[int(line.split()[0])]: (len(line.split()) - 1) // 2 for line in lines}
    assert vertices["person"] > len(merge_polygons(mask_to_polygons(person, 3)))
    assert vertices["car"] == len(merge_polygons(mask_to_polygons(car, 3)))


@pytest.mark.parametrize("mask_format", ["rle", "polygons"])
def test_coco_loads_in_supervision(dataset, tmp_path, mask_format):
    root, records = dataset
    paths = EXPORTERS["coco"](stream(records), CLASSES, PROVENANCE, tmp_path, mask_format=mask_format,
                              polygon_tolerance=TOLERANCE)
    for path in paths:
        loaded = sv.DetectionDataset.from_coco(images_directory_path=str(root), annotations_path=str(path),
                                               force_masks=True)
        assert loaded.classes == list(CLASSES)
        expected = [r for r in records if f"instances_{r.split}.json" == path.name]
        assert len(loaded) == len(expected)
        for record in expected:
            detections = loaded.annotations[str((root / record.key).resolve())]
            assert [CLASSES[i] for i in detections.class_id] == [o.class_name for o in record.objects]
            assert np.allclose(detections.xyxy, [o.box for o in record.objects] or np.empty((0, 4)))
            with_masks = [i for i, o in enumerate(record.objects) if o.rle is not None]
            for index, mask in zip(with_masks, masks_of(record)):
                difference = np.count_nonzero(detections.mask[index] != mask)
                if mask_format == "rle":
                    assert difference == 0
                else:
                    assert difference <= allowed_difference(mask, TOLERANCE)


# YOLO --------------------------------------------------------------------------------------

def test_yolo_segmentation_loads_in_supervision(dataset, tmp_path):
    root, records = dataset
    EXPORTERS["yolo"](stream(records), CLASSES, PROVENANCE, tmp_path, task="segment", image_root=root,
                      polygon_tolerance=TOLERANCE)
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES)) and data["train"] == "images/train"
    for split in ("train", "val"):
        loaded = sv.DetectionDataset.from_yolo(str(tmp_path / "images" / split), str(tmp_path / "labels" / split),
                                               str(tmp_path / "data.yaml"), force_masks=True)
        expected = [r for r in records if r.split == split]
        assert len(loaded) == len(expected)
        for record in expected:
            detections = loaded.annotations[str(tmp_path / "images" / split / flat_name(record.key))]
            assert [CLASSES[i] for i in detections.class_id] == [o.class_name for o in record.objects]
            with_masks = [i for i, o in enumerate(record.objects) if o.rle is not None]
            for index, mask in zip(with_masks, masks_of(record)):
                # the two-part car is joined by a cut of 12 px, which cv2 fills as a line
                bridge = 13 * 2 if record.key.endswith("two.png") else 0
                difference = np.count_nonzero(detections.mask[index] != mask)
                assert difference <= allowed_difference(mask, TOLERANCE, bridge)
            for index, obj in enumerate(record.objects):  # boxes-only: the box, as 4 corners
                if obj.rle is None:
                    assert np.allclose(detections.xyxy[index], obj.box, atol=1e-6 * record.width + 1)


def test_yolo_detection_boxes_are_normalised_centre_and_size(dataset, tmp_path):
    root, records = dataset
    EXPORTERS["yolo"](stream(records), CLASSES, PROVENANCE, tmp_path, task="detect", image_root=root, link="copy")
    loaded = sv.DetectionDataset.from_yolo(str(tmp_path / "images" / "train"), str(tmp_path / "labels" / "train"),
                                           str(tmp_path / "data.yaml"))
    record = records[0]
    detections = loaded.annotations[str(tmp_path / "images" / "train" / "top.png")]
    # 6 decimals of a fraction of the width: half a millionth of it per coordinate, twice (centre +- half size)
    assert np.allclose(detections.xyxy, [o.box for o in record.objects], atol=1e-6 * record.width)
    assert detections.mask is None
    empty = (tmp_path / "labels" / "train" / (flat_name("nested/nothing.png")[:-4] + ".txt")).read_text()
    assert empty == ""
    assert not (tmp_path / "images" / "train" / "top.png").is_symlink()


def test_yolo_flat_names_keep_nested_keys_apart():
    keys = ["a/b.png", "a_b.png", "a%2Fb.png", "a b.png"]
    assert len({flat_name(k) for k in keys}) == len(keys)
    assert all("/" not in flat_name(k) for k in keys)


# CVAT's COCO 1.0 ---------------------------------------------------------------------------

@pytest.mark.parametrize("mask_format", ["polygons", "rle"])
def test_cvat_coco_is_one_file_in_cvats_layout(dataset, tmp_path, mask_format):
    _, records = dataset
    [path] = EXPORTERS["cvat"](stream(records), CLASSES, PROVENANCE, tmp_path, mask_format=mask_format,
                               polygon_tolerance=TOLERANCE)
    assert path == tmp_path / "annotations" / "instances_default.json"
    coco = COCO(str(path))
    assert [image["file_name"] for image in coco.loadImgs(coco.getImgIds())] == [r.key for r in records]
    for image_id, record in zip(coco.getImgIds(), records):
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        with_segmentation = [a for a in annotations if a["segmentation"]]
        for annotation, mask in zip(with_segmentation, masks_of(record), strict=True):
            # what CVAT's datumaro reader checks: polygons of >= 3 points; a mask as RLE with iscrowd 1
            if mask_format == "polygons":
                assert annotation["iscrowd"] == 0
                assert all(len(p) >= 6 and len(p) % 2 == 0 for p in annotation["segmentation"])
                difference = np.count_nonzero(coco.annToMask(annotation).astype(bool) != mask)
                assert difference <= allowed_difference(mask, TOLERANCE)
            else:
                assert annotation["iscrowd"] == 1
                assert np.array_equal(coco.annToMask(annotation).astype(bool), mask)


# Label Studio ------------------------------------------------------------------------------

def test_label_studio_tasks_carry_predictions_with_model_version_and_scores(dataset, tmp_path):
    _, records = dataset
    tasks_path, config_path = EXPORTERS["label-studio"](stream(records), CLASSES, PROVENANCE, tmp_path)
    tasks = json.loads(tasks_path.read_text())
    assert [t["data"]["key"] for t in tasks] == [r.key for r in records]
    assert tasks[1]["data"]["image"] == "/data/local-files/?d=nested/deeper/two.png"
    for task, record in zip(tasks, records):
        [prediction] = task["predictions"]
        assert "sam2_demo@sha256:bbbb" in prediction["model_version"]
        assert PROVENANCE.ontology_hash[:12] in prediction["model_version"]
        assert [r["type"] for r in prediction["result"]] == [
            "brushlabels" if o.rle is not None else "rectanglelabels" for o in record.objects]
        assert [r["score"] for r in prediction["result"]] == pytest.approx([o.score for o in record.objects])
    box = tasks[0]["predictions"][0]["result"][2]["value"]
    assert (box["x"], box["y"], box["width"], box["height"]) == pytest.approx(
        (100 * 100.0 / 160, 100 * 80.0 / 120, 100 * 50.5 / 160, 100 * 35.0 / 120))
    assert 'name="brush"' in config_path.read_text() and '<Label value="dog"/>' in config_path.read_text()


# Contact sheet -----------------------------------------------------------------------------

def test_contact_sheet_samples_the_same_images_whatever_the_order(dataset, tmp_path):
    root, records = dataset
    many = [LabeledImage(f"k{i}.png", "", 8, 8, "", "train") for i in range(40)]
    shuffled = list(many)
    random.Random(3).shuffle(shuffled)
    lowest = sorted(many, key=lambda r: hashlib.sha256(r.key.encode()).digest())[:5]
    assert sample_images(stream(many), 5) == sample_images(stream(shuffled), 5) == lowest

    [path] = EXPORTERS["contact-sheet"](stream(records), CLASSES, PROVENANCE, tmp_path, sample=4, cell=64,
                                       image_root=root)
    with Image.open(path) as sheet:
        assert sheet.size == (2 * 64, 2 * (64 + 14))  # 3 images: a 2 x 2 grid, captions under each cell
        pixels = np.asarray(sheet.convert("RGB"))
    top = sample_images(stream(records), 4).index(records[0])
    cell = pixels[(top // 2) * 78:(top // 2) * 78 + 64, (top % 2) * 64:(top % 2 + 1) * 64]
    assert len(np.unique(cell.reshape(-1, 3), axis=0)) > 100  # the photo itself, not a placeholder


def test_an_unknown_class_is_a_clear_error(tmp_path):
    record = LabeledImage("x.png", "x.png", 4, 4, "", "train", (LabeledObject("cat", (0, 0, 1, 1), 0.5, "cat"),))
    for name in ("coco", "cvat", "label-studio"):
        with pytest.raises(ValueError, match="'cat' is not one of"):
            EXPORTERS[name](stream([record]), CLASSES, PROVENANCE, tmp_path / name)
