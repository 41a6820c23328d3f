"""One image through the server: each missing prompt task's raw objects, as the manifest stores them
(box x0, y0, x1, y1; score; mask RLE or None). Runs in the job's worker threads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labelgate.client.labeling.plan import PromptTask


@dataclass(frozen=True)
class LabelOutcome:
    width: int
    height: int
    results: dict  # prompt key -> list of raw object dicts


def label_image(client, data: bytes, tasks: Sequence[PromptTask]) -> LabelOutcome:
    """The client sends the bytes once; later prompts on the image go by its image_id."""
    width = height = 0
    results = {}
    for task in tasks:
        if task.call == "detect":
            found = client.detect(data, task.text, box_threshold=task.box_threshold,
                                  text_threshold=task.text_threshold, model=task.model)
            objects = [{"box": list(d.box), "score": d.score, "rle": None} for d in found.detections]
        else:
            found = client.segment(data, text=task.text, box_threshold=task.box_threshold,
                                   text_threshold=task.text_threshold, model=task.model,
                                   detector_model=task.detector_model, formats=("coco_rle",))
            objects = [_segmented(obj) for obj in found.objects if obj.best is not None and obj.best.area > 0]
        width, height = found.width, found.height
        results[task.key] = objects
    return LabelOutcome(width, height, results)


def _segmented(obj) -> dict:
    mask = obj.best
    return {"box": list(mask.bbox or obj.prompt_box), "score": obj.detection_score or mask.score, "rle": mask.rle}
