"""A CVAT task as the source of `labelgate label` and the COCO 1.0 upload back into it, against a
STAND-IN of cvat-sdk's Task object (the few methods the job calls, as cvat-sdk 2.80 defines them),
not a real CVAT: frames become dataset keys, deleted frames are skipped, a frame that cannot be
downloaded fails alone, and the uploaded file holds exactly the task's frames, once."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pycocotools.mask
import pytest
from cvat_sdk.api_client.exceptions import ApiException
from labelgate.client.labeling import cvat_source
from labelgate.client.labeling.assemble import labeled_images
from labelgate.client.labeling.commands import add_labeling_commands
from labelgate.client.labeling.cvat_push import check_labels, push_annotations
from labelgate.client.labeling.cvat_source import (
    CvatTaskSource,
    frame_names,
    parse_reference,
)
from labelgate.client.labeling.export.cvat import CVAT_ANNOTATIONS
from labelgate.client.labeling.exporting import exporter_options
from labelgate.client.labeling.job import JobOptions, run_labeling
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.ontology import Ontology
from labelgate.client.labeling.plan import ModelChoice, prompt_tasks
from labelgate.client.labeling.records import Provenance
from labelgate.client.labeling.remote_sources import (
    PUSHED_CVAT_DIR,
    SOURCE_IMAGES_DIR,
    keeping_images,
    open_remote,
)
from PIL import Image

HOST = "https://cvat.example.com"
ONTOLOGY = Ontology.from_dict({"classes": {"car": {"prompts": ["a car"]}}})
MODELS = ModelChoice("sam2", "gd", False, {"sam2": "v1", "gd": "v2"})
PROVENANCE = Provenance({"sam2": "v1", "gd": "v2"}, ONTOLOGY.hash)


def _png(seed: int, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), seed * 40, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


class StandInCvatTask:
    """A stand-in of cvat_sdk.core.proxies.tasks.Task: get_meta, get_frame, get_labels, import_annotations."""

    def __init__(self, names: list[str], *, deleted=(), broken=(), labels=("car",), video_frames: int = 0):
        self.id, self.dimension = 7, "2d"
        self.frames = {number: _png(number, 8 + number, 6) for number in range(video_frames or len(names))}
        frames = [SimpleNamespace(name=name, width=8, height=6) for name in names]
        self._meta = SimpleNamespace(frames=frames, deleted_frames=list(deleted), size=video_frames or len(names))
        self.broken, self.labels, self.imported, self.qualities = set(broken), labels, [], []

    def get_meta(self):
        return self._meta

    def get_frame(self, frame_id: int, *, quality: str | None = None):
        self.qualities.append(quality)
        if frame_id in self.broken:
            raise ApiException(status=500, reason="Internal Server Error")
        return io.BytesIO(self.frames[frame_id])

    def get_labels(self):
        return [SimpleNamespace(name=name) for name in self.labels]

    def import_annotations(self, format_name: str, filename) -> None:
        self.imported.append((format_name, json.loads(Path(filename).read_text())))


class ScriptedClient:
    """Answers every text prompt with one mask: the image's left half."""

    def segment(self, data: bytes, text: str, **_):
        width, height = Image.open(io.BytesIO(data)).size
        mask = np.zeros((height, width), np.uint8)
        mask[:, : width // 2] = 1
        rle = pycocotools.mask.encode(np.asfortranarray(mask))
        best = SimpleNamespace(area=int(mask.sum()), bbox=(0.0, 0.0, width // 2, float(height)), score=0.8,
                               rle={"size": [height, width], "counts": rle["counts"].decode()})
        return SimpleNamespace(objects=[SimpleNamespace(best=best, prompt_box=None, detection_score=0.7)],
                               width=width, height=height)


def _label(task: StandInCvatTask, out: Path) -> tuple[CvatTaskSource, Manifest, object]:
    source = CvatTaskSource(task, HOST)
    manifest = Manifest.in_dir(out)
    counters = run_labeling(ScriptedClient(), source.items(), manifest, prompt_tasks(ONTOLOGY, MODELS).values(), out,
                            JobOptions(concurrency=2, progress=False))
    return source, manifest, counters


def _images(manifest: Manifest):
    return labeled_images(manifest, ONTOLOGY, prompt_tasks(ONTOLOGY, MODELS), 0.1)


def test_a_reference_names_host_and_task():
    assert parse_reference("cvat://cvat.example.com:8080/12") == ("cvat.example.com:8080", 12)
    with pytest.raises(ValueError, match="cvat://HOST"):
        parse_reference("cvat://cvat.example.com/task-12")


def test_frames_are_keyed_by_their_name_in_the_task_and_deleted_ones_skipped(tmp_path):
    task = StandInCvatTask(["images/a.png", "images/b.png", "c.png"], deleted=[1])
    _, manifest, counters = _label(task, tmp_path)
    with manifest:
        images = list(_images(manifest))
    assert counters.labeled == 2 and counters.failed == 0
    assert [image.key for image in images] == ["c.png", "images/a.png"]
    assert images[0].source == f"{HOST}/api/tasks/7/data?type=frame&quality=original&number=2"
    assert (images[1].width, images[1].height) == (8, 6)
    assert set(task.qualities) == {"original"}


def test_a_video_task_names_its_frames_as_cvat_does():
    task = StandInCvatTask(["clip.mp4"], video_frames=3)
    assert frame_names(task) == [(0, "frame_000000"), (1, "frame_000001"), (2, "frame_000002")]


def test_a_frame_that_cannot_be_downloaded_fails_alone_and_a_rerun_reads_only_what_is_missing(tmp_path):
    task = StandInCvatTask(["a.png", "b.png", "c.png"], broken=[1])
    _, manifest, counters = _label(task, tmp_path)
    with manifest:
        assert counters.labeled == 2 and counters.failed == 1
        assert [key for key, _, error in manifest.failures()] == ["b.png"]
    task.broken.clear()
    task.qualities.clear()
    _, manifest, counters = _label(task, tmp_path)
    manifest.close()
    assert counters.labeled == 1 and counters.skipped == 2
    assert len(task.qualities) == 1  # the finished frames are not downloaded again


def test_the_upload_is_cvat_coco_of_the_task_frames_once_per_labels(tmp_path):
    task = StandInCvatTask(["images/a.png", "images/b.png"])
    source, manifest, _ = _label(task, tmp_path)
    with manifest:
        manifest.put_image("elsewhere.png", "/local/elsewhere.png", "h-other", 1, 1)  # another source's image
        manifest.put_results("h-other", 4, 3, {t.key: [] for t in prompt_tasks(ONTOLOGY, MODELS).values()})
        assert len(list(_images(manifest))) == 3
        first = push_annotations(source, _images(manifest), ONTOLOGY.class_names, PROVENANCE, tmp_path / "push",
                                 manifest)
        again = push_annotations(source, _images(manifest), ONTOLOGY.class_names, PROVENANCE, tmp_path / "push",
                                 manifest)
    assert first.uploaded and first.frames == 2 and not again.uploaded
    [(format_name, coco)] = task.imported
    assert format_name == "COCO 1.0"
    assert [image["file_name"] for image in coco["images"]] == ["images/a.png", "images/b.png"]
    assert [category["name"] for category in coco["categories"]] == ["car"]
    assert len(coco["annotations"]) == 2 and all(a["segmentation"] for a in coco["annotations"])


def test_an_upload_needs_every_class_as_a_label_of_the_task():
    source = CvatTaskSource(StandInCvatTask(["a.png"], labels=("truck",)), HOST)
    with pytest.raises(ValueError, match=r"no label\(s\) \['car'\]"):
        check_labels(source, ["car"])


def test_kept_images_are_the_downloaded_bytes_and_a_lost_one_is_downloaded_again(tmp_path):
    task = StandInCvatTask(["images/a.png", "b.png"])
    kept = tmp_path / "kept"
    source = CvatTaskSource(task, HOST)
    tasks = prompt_tasks(ONTOLOGY, MODELS).values()
    with Manifest.in_dir(tmp_path) as manifest:
        run_labeling(ScriptedClient(), keeping_images(source.items(), kept, manifest), manifest, tasks, tmp_path,
                     JobOptions(progress=False))
        assert (kept / "images/a.png").read_bytes() == task.frames[0] and (kept / "b.png").read_bytes() == task.frames[1]
        (kept / "b.png").unlink()
        task.qualities.clear()
        counters = run_labeling(ScriptedClient(), keeping_images(source.items(), kept, manifest), manifest, tasks, tmp_path,
                                JobOptions(progress=False))
    assert counters.labeled == 0 and len(task.qualities) == 1 and (kept / "b.png").read_bytes() == task.frames[1]


class StandInCvatClient:
    """A stand-in of cvat_sdk's Client: a context manager with tasks.retrieve and api_map.host."""

    def __init__(self, task: StandInCvatTask):
        self.tasks = SimpleNamespace(retrieve=lambda task_id: task if task_id == task.id else None)
        self.api_map = SimpleNamespace(host=HOST)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass


def test_the_command_line_glue_reads_the_task_keeps_images_for_yolo_and_uploads(tmp_path, monkeypatch):
    task = StandInCvatTask(["a.png"])
    monkeypatch.setattr(cvat_source, "connect", lambda host: StandInCvatClient(task))
    parser = argparse.ArgumentParser()
    add_labeling_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["label", "cvat://cvat.example.com/7", "--ontology", "unused.yaml", "--out", str(tmp_path),
                              "--push-annotations", "--format", "coco,yolo"])
    with Manifest.in_dir(tmp_path) as manifest, open_remote(args, ONTOLOGY, manifest) as remote:
        run_labeling(ScriptedClient(), remote.items("*.png"), manifest, prompt_tasks(ONTOLOGY, MODELS).values(),
                     tmp_path, JobOptions(progress=False))
        lines = remote.push(manifest, _images(manifest), ONTOLOGY, PROVENANCE, tmp_path, exporter_options(ONTOLOGY, {}))
    assert (tmp_path / SOURCE_IMAGES_DIR / "a.png").read_bytes() == task.frames[0]
    assert lines == [f"uploaded labels of 1 frames to CVAT task 7 ({tmp_path / PUSHED_CVAT_DIR / CVAT_ANNOTATIONS})"]
    [annotation] = task.imported[0][1]["annotations"]
    assert annotation["iscrowd"] == 0 and isinstance(annotation["segmentation"], list)  # polygons: CVAT's default
