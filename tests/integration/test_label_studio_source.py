"""`labelgate label ls://HOST:PORT/ID --push-predictions` against a real Label Studio and a real
labelgate server with the demo models: the project's tasks are listed page by page, their images
downloaded with the API key (a local-files task and an uploaded one), labeled, and pushed back as
predictions that Label Studio stores and decodes (with its own brush codec) to the masks the job
stored; a rerun (naming the project with --label-studio-url and --project, and authenticating with a
personal access token instead of the legacy token) labels and pushes nothing;
the YOLO export holds the downloaded images.

Slow (Label Studio takes ~40 s to start), so it runs last (`runs_last`, see tests/conftest.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import supervision
from label_studio_process import decode_brushes, start_label_studio
from labelgate.client.labeling import label_studio_api
from labelgate.client.labeling.assemble import labeled_images
from labelgate.client.labeling.commands import _stored, add_labeling_commands
from labelgate.client.labeling.export.common import decode_mask
from labelgate.client.labeling.export.label_studio import label_config
from labelgate.client.labeling.export.yolo import flat_name
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.ontology import load_ontology
from labelgate.client.labeling.plan import prompt_tasks
from reference import encode, random_image

pytestmark = pytest.mark.runs_last

LOW = {"box_threshold": 0.05, "text_threshold": 0.05}  # random weights score low: keep what they find
ONTOLOGY = {"classes": {"cat": {"prompts": ["a cat"], **LOW}, "dog": {"prompts": ["a dog"], "output": "boxes", **LOW}}}
LOCAL = ["a.png", "nested/b.png", "c.png"]
UPLOADED = "copy_of_a.png"  # the same bytes as a.png, uploaded: a second task, labeled once by content


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("local-files")
    files = {}
    for seed, name in enumerate(LOCAL):
        path = root / "photos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(random_image(seed, 48 + 8 * seed, 64)))
        files[name] = path.read_bytes()
    files[UPLOADED] = files["a.png"]
    return root, files


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory, images):
    root, _ = images
    running = start_label_studio(tmp_path_factory.mktemp("label-studio"), root)
    running.wait_healthy()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def project(label_studio, images):
    """A project whose config names its controls unlike the exporter's defaults (the push must read
    them from it): three local-files tasks and one uploaded image."""
    root, files = images
    config = label_config(["cat", "dog"], brush_from_name="outline", box_from_name="frame", to_name="photo")
    created = label_studio.api("POST", "/api/projects", {"title": "labelgate source", "label_config": config})
    label_studio.api("POST", "/api/storages/localfiles",
                     {"project": created["id"], "title": "photos", "path": str(root / "photos")})
    label_studio.api("POST", f"/api/projects/{created['id']}/import",
                     [{"image": f"/data/local-files/?d=photos/{name}"} for name in LOCAL])
    label_studio.api("POST", f"/api/projects/{created['id']}/import", files={UPLOADED: files[UPLOADED]})
    tasks = label_studio.api("GET", "/api/tasks", params={"project": created["id"]})["tasks"]
    assert len(tasks) == len(files)
    return created["id"], {task["id"]: task for task in tasks}


def _label(server, token: str, *argv: str) -> tuple[int, dict]:
    parser = argparse.ArgumentParser()
    add_labeling_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["label", *argv, "--server", server.address, "--no-progress", "--ls-token", token])
    code = args.func(args)
    return code, json.loads((args.out / "summary.json").read_text())


def _predictions(label_studio, project_id: int) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for prediction in label_studio.api("GET", "/api/predictions", params={"project": project_id}):
        found.setdefault(prediction["task"], []).append(prediction)
    return found


@pytest.fixture(scope="module")
def labeled(server, label_studio, project, tmp_path_factory, monkeypatch_module):
    project_id, _ = project
    monkeypatch_module.setattr(label_studio_api, "PAGE_SIZE", 3)  # 4 tasks: two pages
    work = tmp_path_factory.mktemp("job")
    ontology = work / "ontology.json"
    ontology.write_text(json.dumps(ONTOLOGY))
    argv = ("--ontology", str(ontology), "--out", str(work / "out"), "--push-predictions", "--format", "coco,yolo,label-studio")
    first = _label(server, label_studio.token, f"ls://{label_studio.url.removeprefix('http://')}/{project_id}", *argv)
    after_first = _predictions(label_studio, project_id)
    personal_access_token = label_studio.api("POST", "/api/token/")["token"]  # a JWT refresh token
    second = _label(server, personal_access_token, "--label-studio-url", label_studio.url, "--project", str(project_id),
                    *argv)
    return {"out": work / "out", "ontology": ontology, "first": first, "second": second,
            "after_first": after_first, "after_second": _predictions(label_studio, project_id)}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _stored_images(out):
    with Manifest.in_dir(out) as manifest:
        ontology, models = _stored(manifest, None)
        return list(labeled_images(manifest, ontology, prompt_tasks(ontology, models), 0.1))


def test_every_task_is_downloaded_with_the_key_and_labeled_once_per_content(labeled, project, images):
    _, files = images
    _, tasks = project
    code, summary = labeled["first"]
    assert code == 0
    assert summary["run"]["seen"] == len(tasks) and summary["run"]["failed"] == 0
    assert summary["run"]["labeled"] == len(set(files.values()))  # the uploaded copy is not labeled again
    stored = {image.key: image for image in _stored_images(labeled["out"])}
    assert sorted(stored) == sorted(f"task-{task_id}/{task['data']['image'].rsplit('/', 1)[-1]}"
                                    for task_id, task in tasks.items())
    by_name = {name.rsplit("/", 1)[-1]: data for name, data in files.items()}
    for key, image in stored.items():
        name = key.split("/", 1)[1]
        expected = by_name.get(name) or files[UPLOADED]  # Label Studio prefixes an upload's name
        assert image.content_hash == hashlib.sha256(expected).hexdigest()


def test_the_tasks_json_points_at_the_images_where_label_studio_keeps_them(labeled, project):
    _, tasks = project
    exported = json.loads((labeled["out"] / "label-studio" / "tasks.json").read_text())
    by_key = {task["data"]["key"]: task["data"]["image"] for task in exported}
    assert by_key == {f"task-{task_id}/{task['data']['image'].rsplit('/', 1)[-1]}": task["data"]["image"]
                      for task_id, task in tasks.items()}  # uploads and local files alike, not a local-files guess


def test_each_task_gets_one_prediction_that_decodes_to_the_stored_masks(labeled, project):
    _, tasks = project
    predictions = labeled["after_first"]
    assert sorted(predictions) == sorted(tasks) and all(len(p) == 1 for p in predictions.values())
    version = load_ontology(labeled["ontology"]).hash[:12]
    assert {p[0]["model_version"] for p in predictions.values()} == {
        next(iter(predictions.values()))[0]["model_version"]}
    assert next(iter(predictions.values()))[0]["model_version"].endswith(f"ontology:{version}")
    masks = 0
    for image in _stored_images(labeled["out"]):
        task_id = int(image.source.rsplit("=", 1)[1])
        result = predictions[task_id][0]["result"]
        brushes = [r for r in result if r["type"] == "brushlabels"]
        rectangles = [r for r in result if r["type"] == "rectanglelabels"]
        expected = [obj for obj in image.objects if obj.rle is not None]
        assert [r["value"]["brushlabels"] for r in brushes] == [[obj.class_name] for obj in expected]
        assert all(r["from_name"] == "outline" and r["to_name"] == "photo" for r in brushes)
        assert all(r["from_name"] == "frame" and r["value"]["rectanglelabels"] == ["dog"] for r in rectangles)
        assert len(rectangles) == len(image.objects) - len(expected)
        for decoded, obj in zip(decode_brushes(brushes) if brushes else [], expected, strict=True):
            assert np.array_equal(decoded, decode_mask(obj))
        masks += len(brushes)
    assert masks > 0  # the demo models find something at these thresholds: the comparison is not vacuous


def test_a_rerun_labels_and_pushes_nothing(labeled, project):
    code, summary = labeled["second"]
    assert code == 0 and summary["run"]["labeled"] == 0 and summary["run"]["requests"] == 0
    assert labeled["after_second"] == labeled["after_first"]
    # summary.json says what each run pushed back
    project_id, _ = project
    pushed = sum(len(predictions) for predictions in labeled["after_first"].values())
    where = f"Label Studio project {project_id}"
    assert labeled["first"][1]["pushed"] == [f"pushed {pushed} predictions to {where} (0 already there), 0 failed"]
    assert summary["pushed"] == [f"pushed 0 predictions to {where} ({pushed} already there), 0 failed"]


def test_the_yolo_dataset_holds_the_downloaded_images(labeled, project, images):
    _, files = images
    _, tasks = project
    yolo = labeled["out"] / "yolo"
    found = {}
    for split in ("train", "val"):
        dataset = supervision.DetectionDataset.from_yolo(str(yolo / "images" / split), str(yolo / "labels" / split),
                                                         str(yolo / "data.yaml"), is_obb=False)
        assert dataset.classes == ["cat", "dog"]
        found.update({Path(path).name: (Path(path).read_bytes(), len(detections)) for path, _, detections in dataset})
    stored = {flat_name(image.key): image for image in _stored_images(labeled["out"])}
    assert sorted(found) == sorted(stored) and len(found) == len(tasks)
    for name, (data, objects) in found.items():
        assert hashlib.sha256(data).hexdigest() == stored[name].content_hash
        assert objects == len(stored[name].objects)
    assert {image.content_hash for image in stored.values()} == {hashlib.sha256(d).hexdigest() for d in files.values()}


def test_embed_warms_the_cache_for_every_task_of_the_project(server, label_studio, project, labeled, capsys):
    project_id, tasks = project
    parser = argparse.ArgumentParser()
    add_labeling_commands(parser.add_subparsers(dest="command", required=True))
    source = f"ls://{label_studio.url.removeprefix('http://')}/{project_id}"
    for _ in range(2):
        args = parser.parse_args(["embed", source, "--server", server.address, "--no-progress",
                                  "--ls-token", label_studio.token])
        assert args.func(args) == 0
    first, second = capsys.readouterr().out.strip().splitlines()[-2:]
    assert first.startswith(f"embedded {len(tasks)} images") and first.endswith(", 0 failed")
    assert second == f"embedded {len(tasks)} images ({len(tasks)} were already cached), 0 failed"
