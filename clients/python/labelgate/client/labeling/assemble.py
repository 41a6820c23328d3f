"""From the raw prompt results stored in the manifest to the LabeledImages the exporters read:
classes from the ontology, minimum area, class-specific then class-agnostic NMS, the split. Cheap
and deterministic, so changing these settings needs no server."""

from __future__ import annotations

from collections.abc import Iterator

import pycocotools.mask
from labelgate.client.labeling.keys import split_of
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.nms import suppress
from labelgate.client.labeling.ontology import Ontology
from labelgate.client.labeling.plan import PromptTask
from labelgate.client.labeling.records import LabeledImage, LabeledObject


def assemble(ontology: Ontology, tasks: dict[tuple[str, str], PromptTask], results: dict[str, list]) -> list[LabeledObject]:
    """The objects of one image, by class in ontology order, best score first within a class."""
    kept: list[LabeledObject] = []
    for cls in ontology.classes:
        found = []
        for prompt in cls.prompts:
            for raw in results[tasks[(cls.name, prompt)].key]:
                rle = raw["rle"] if cls.output == "masks" else None
                obj = LabeledObject(cls.name, tuple(float(v) for v in raw["box"]), float(raw["score"]), prompt, rle)
                if _area(obj) >= cls.min_area:
                    found.append(obj)
        kept.extend(suppress(found, ontology.nms.iou, ontology.nms.by))
    if ontology.nms.agnostic_iou > 0:
        survivors = {id(o) for o in suppress(kept, ontology.nms.agnostic_iou, ontology.nms.by)}
        kept = [o for o in kept if id(o) in survivors]
    return kept


def labeled_images(manifest: Manifest, ontology: Ontology, tasks: dict[tuple[str, str], PromptTask],
                   val_fraction: float) -> Iterator[LabeledImage]:
    """Every finished image of the manifest, in key order, one at a time."""
    keys = [task.key for task in tasks.values()]
    for key, source, digest, width, height, results in manifest.finished(keys):
        yield LabeledImage(key, source, width, height, digest, split_of(key, val_fraction),
                           tuple(assemble(ontology, tasks, results)))


def _area(obj: LabeledObject) -> float:
    if obj.rle is not None:
        return float(pycocotools.mask.area({"size": list(obj.rle["size"]), "counts": obj.rle["counts"].encode("ascii")}))
    x0, y0, x1, y1 = obj.box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)
