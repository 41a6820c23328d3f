"""`--push-predictions`: the job's labels into the Label Studio project they came from, one
prediction per task (`POST /api/predictions`), with the same regions as the Label Studio export and
`model_version` naming the models, weights and ontology. The manifest records each push, so a rerun
with the same model_version pushes nothing again; a changed ontology or model is a new version."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from labelgate.client.labeling.export.label_studio import prediction
from labelgate.client.labeling.label_studio_api import LabelStudioError
from labelgate.client.labeling.label_studio_source import Controls, LabelStudioProject
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.ontology import Ontology
from labelgate.client.labeling.records import LabeledImage


@dataclass
class PushCounts:
    pushed: int = 0
    already: int = 0
    failed: int = 0
    first_error: str = ""

    def line(self, where: str) -> str:
        text = f"pushed {self.pushed} predictions to {where} ({self.already} already there), {self.failed} failed"
        return text + (f": {self.first_error}" if self.first_error else "")


def check_controls(controls: Controls, ontology: Ontology) -> None:
    """The project's config must have a control, with the class as a label, for every class's output."""
    problems = []
    for cls in ontology.classes:
        tag, control = ("BrushLabels", controls.brush) if cls.output == "masks" else ("RectangleLabels", controls.box)
        if not control:
            problems.append(f"no <{tag} toName=\"{controls.image_name}\"> for class {cls.name!r}")
        elif cls.name not in controls.labels[control]:
            problems.append(f"<{tag} name=\"{control}\"> has no <Label value=\"{cls.name}\"/>")
    if problems:
        raise ValueError("the project's labeling config cannot show these predictions: " + "; ".join(problems))


def push_predictions(project: LabelStudioProject, images: Iterable[LabeledImage], version: str,
                     manifest: Manifest) -> PushCounts:
    """Images of other sources in the manifest are left alone; a task that refuses its prediction
    (deleted since?) is counted and the push goes on."""
    counts = PushCounts()
    prefix, controls = project.source_prefix, project.controls
    for image in images:
        if not image.source.startswith(prefix):
            continue
        task_id = image.source[len(prefix):]
        if manifest.pushed(prefix, task_id, version):
            counts.already += 1
            continue
        body = {"task": int(task_id),
                **prediction(image, version, controls.brush or "brush", controls.box or "box", controls.image_name)}
        try:
            project.api.post_json("/api/predictions", body)
        except LabelStudioError as error:
            counts.failed += 1
            counts.first_error = counts.first_error or str(error)
            continue
        manifest.record_push(prefix, task_id, version)
        counts.pushed += 1
    return counts
