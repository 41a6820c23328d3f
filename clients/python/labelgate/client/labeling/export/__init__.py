"""Exporters of a labeled dataset, by output format name. Each is called as
`export(images, classes, provenance, out_dir, **options) -> list[Path]` with `images` an iterable of
LabeledImage read once, as it streams (no exporter holds the dataset in memory), and ignores the
options that are not its own; see docs/labeling.md, "Outputs"."""

from __future__ import annotations

from collections.abc import Callable

from labelgate.client.labeling.export.coco import export_coco
from labelgate.client.labeling.export.contact_sheet import export_contact_sheet
from labelgate.client.labeling.export.cvat import export_cvat
from labelgate.client.labeling.export.label_studio import export_label_studio
from labelgate.client.labeling.export.yolo import export_yolo

EXPORTERS: dict[str, Callable] = {
    "coco": export_coco,
    "yolo": export_yolo,
    "label-studio": export_label_studio,
    "cvat": export_cvat,
    "contact-sheet": export_contact_sheet,
}

__all__ = ["EXPORTERS", "export_coco", "export_contact_sheet", "export_cvat", "export_label_studio", "export_yolo"]
