"""`--push-annotations`: the job's labels of one CVAT task, written as CVAT's COCO 1.0 (the `cvat`
exporter) and uploaded with `Task.import_annotations("COCO 1.0", file)`.

CVAT's import replaces the task's annotations, so the manifest records what was uploaded (the
model_version and a digest of the frames and objects in the file): a rerun that would upload the same
labels again uploads nothing, and does not wipe corrections made in CVAT since. Not tested against
a real CVAT (see docs/labeling.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from labelgate.client.labeling.cvat_source import CvatTaskSource
from labelgate.client.labeling.export.common import model_version
from labelgate.client.labeling.export.cvat import export_cvat
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.records import LabeledImage, Provenance

COCO_FORMAT = "COCO 1.0"


@dataclass
class UploadResult:
    frames: int
    uploaded: bool
    path: Path

    def line(self, task_id: int) -> str:
        if not self.uploaded:
            return f"CVAT task {task_id} already has these labels ({self.frames} frames); nothing uploaded"
        return f"uploaded labels of {self.frames} frames to CVAT task {task_id} ({self.path})"


def check_labels(source: CvatTaskSource, classes: Sequence[str]) -> None:
    missing = sorted(set(classes) - source.label_names())
    if missing:
        raise ValueError(f"CVAT task {source.task.id} has no label(s) {missing}: add them to the task (or its project) "
                         "first; CVAT refuses annotations of unknown labels")


def push_annotations(source: CvatTaskSource, images: Iterable[LabeledImage], classes: Sequence[str],
                     provenance: Provenance, out_dir: Path, manifest: Manifest, **export_options) -> UploadResult:
    digest = hashlib.sha256(model_version(provenance).encode())
    counted = {"frames": 0}

    def of_this_task(stream: Iterable[LabeledImage]) -> Iterator[LabeledImage]:
        for image in stream:
            if image.source.startswith(source.source_prefix):
                counted["frames"] += 1
                digest.update(repr((image.key, image.content_hash, image.objects)).encode())
                yield image

    [path] = export_cvat(of_this_task(images), classes, provenance, Path(out_dir), **export_options)
    version = digest.hexdigest()
    if manifest.pushed(source.source_prefix, "annotations", version):
        return UploadResult(counted["frames"], False, path)
    source.task.import_annotations(COCO_FORMAT, path)
    manifest.record_push(source.source_prefix, "annotations", version)
    return UploadResult(counted["frames"], True, path)
