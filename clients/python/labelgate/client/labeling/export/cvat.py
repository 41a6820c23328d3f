"""COCO 1.0 as CVAT's task import reads it (CVAT's datumaro fork, `coco_instances`): one file,
`annotations/instances_default.json`, as CVAT's own export names it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from labelgate.client.labeling.export.coco import segmentation_writer, write_coco
from labelgate.client.labeling.export.common import DEFAULT_POLYGON_TOLERANCE, PolygonTolerance
from labelgate.client.labeling.export.common import check_mask_format
from labelgate.client.labeling.records import LabeledImage, Provenance

CVAT_ANNOTATIONS = "annotations/instances_default.json"


def export_cvat(images: Iterable[LabeledImage], classes: Sequence[str], provenance: Provenance, out_dir: Path, *,
                mask_format: str = "polygons", polygon_tolerance: PolygonTolerance = DEFAULT_POLYGON_TOLERANCE, **_) -> list[Path]:
    """Every split in one file, images matched to the task's frames by `file_name` (the key). CVAT
    makes each polygon an editable polygon shape (the default) and an RLE a mask shape; RLE is
    written with iscrowd 1, as CVAT itself exports masks. Boxes-only objects become rectangles.
    `score` becomes an attribute of each shape."""
    check_mask_format(mask_format)
    return write_coco(images, classes, provenance, Path(out_dir), lambda split: CVAT_ANNOTATIONS, splits=("all",),
                      segmentation=segmentation_writer(mask_format, polygon_tolerance, crowd_rle=True))
