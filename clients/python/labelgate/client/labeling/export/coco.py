"""COCO instances JSON (`instances_train.json`, `instances_val.json`), written as images stream in:
images and annotations go to temporary files, spliced into each final file at the end."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from labelgate.client.labeling.export.common import (
    SPLITS,
    DEFAULT_POLYGON_TOLERANCE,
    JsonArrayWriter,
    PolygonTolerance,
    atomic_text,
    check_mask_format,
    class_index,
    decode_mask,
    known_class,
    mask_area,
    model_version,
    polygon_tolerance_for,
    provenance_dict,
)
from labelgate.client.labeling.export.polygons import mask_to_polygons
from labelgate.client.labeling.records import LabeledImage, LabeledObject, Provenance

def export_coco(images: Iterable[LabeledImage], classes: Sequence[str], provenance: Provenance, out_dir: Path, *,
                mask_format: str = "rle", polygon_tolerance: PolygonTolerance = DEFAULT_POLYGON_TOLERANCE, **_) -> list[Path]:
    """One COCO instances file per split, `file_name` = the image's key (relative to the dataset root),
    with a `score` per annotation and the provenance under `info`. Masks as compressed RLE
    (iscrowd 0) or polygons; boxes-only objects have an empty `segmentation`."""
    check_mask_format(mask_format)
    return write_coco(images, classes, provenance, Path(out_dir), lambda split: f"instances_{split}.json",
                      segmentation=segmentation_writer(mask_format, polygon_tolerance, crowd_rle=False))


def write_coco(images: Iterable[LabeledImage], classes: Sequence[str], provenance: Provenance, out_dir: Path,
               file_for_split: Callable[[str], str], *, segmentation: Callable[[LabeledObject], tuple[object, int]],
               splits: Sequence[str] = SPLITS) -> list[Path]:
    """The COCO writer both COCO and CVAT's COCO 1.0 use. `file_for_split` names the file an image of
    a split goes to (the same name for every split makes one file); `segmentation` turns an object with
    a mask into (segmentation, iscrowd)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = class_index(classes)
    files: dict[str, _CocoFile] = {}
    try:
        for split in splits:
            files.setdefault(file_for_split(split), _CocoFile(out_dir))
        for image in images:
            coco_file = files.setdefault(file_for_split(image.split), _CocoFile(out_dir))
            coco_file.add(image, index, segmentation)
        header = {
            "info": {"description": "labelgate dataset labels", "version": model_version(provenance),
                     "date_created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "labelgate": provenance_dict(provenance)},
            "licenses": [],
            "categories": [{"id": position + 1, "name": name, "supercategory": ""}
                           for position, name in enumerate(classes)],
        }
        return [coco_file.finish(out_dir / name, header) for name, coco_file in files.items()]
    finally:
        for coco_file in files.values():
            coco_file.close()


def segmentation_writer(mask_format: str, tolerance: PolygonTolerance, *,
                        crowd_rle: bool) -> Callable[[LabeledObject], tuple[object, int]]:
    def segmentation(obj: LabeledObject) -> tuple[object, int]:
        if mask_format == "rle":
            return {"size": list(obj.rle["size"]), "counts": obj.rle["counts"]}, int(crowd_rle)
        polygons = mask_to_polygons(decode_mask(obj), polygon_tolerance_for(obj, tolerance))
        return [[round(float(v), 2) for v in polygon.reshape(-1)] for polygon in polygons], 0
    return segmentation


class _CocoFile:
    def __init__(self, directory: Path):
        self._images = JsonArrayWriter(directory)
        self._annotations = JsonArrayWriter(directory)

    def add(self, image: LabeledImage, index: dict[str, int], segmentation) -> None:
        image_id = self._images.count + 1
        self._images.append({"id": image_id, "file_name": image.key, "width": image.width, "height": image.height,
                             "labelgate_split": image.split, "labelgate_sha256": image.content_hash})
        for obj in image.objects:
            category = known_class(obj, index, image) + 1
            x0, y0, x1, y1 = (float(v) for v in obj.box)
            annotation = {"id": self._annotations.count + 1, "image_id": image_id, "category_id": category,
                          "bbox": [x0, y0, x1 - x0, y1 - y0], "score": round(float(obj.score), 5)}
            if obj.rle is not None:
                annotation["segmentation"], annotation["iscrowd"] = segmentation(obj)
                annotation["area"] = float(mask_area(obj))
            else:
                annotation["segmentation"], annotation["iscrowd"] = [], 0
                annotation["area"] = (x1 - x0) * (y1 - y0)
            self._annotations.append(annotation)

    def finish(self, path: Path, header: dict) -> Path:
        with atomic_text(path) as out:
            out.write(json.dumps(header)[:-1] + ',\n"images":[\n')
            self._images.copy_into(out)
            out.write('\n],\n"annotations":[\n')
            self._annotations.copy_into(out)
            out.write("\n]}\n")
        return path

    def close(self) -> None:
        self._images.close()
        self._annotations.close()
