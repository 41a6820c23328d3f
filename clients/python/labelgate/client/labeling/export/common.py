"""What every exporter needs: masks from records, provenance text, image files, and JSON arrays
written item by item (a dataset's annotations never sit in memory together)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Union

import numpy as np
import pycocotools.mask
from labelgate.client.labeling.records import LabeledImage, LabeledObject, Provenance

SPLITS = ("train", "val")
MASK_FORMATS = ("rle", "polygons")


def decode_mask(obj: LabeledObject) -> np.ndarray:
    """The object's mask as an H x W bool array (it must have one)."""
    rle = {"size": list(obj.rle["size"]), "counts": obj.rle["counts"].encode("ascii")}
    return pycocotools.mask.decode(rle).astype(bool)


def mask_area(obj: LabeledObject) -> int:
    rle = {"size": list(obj.rle["size"]), "counts": obj.rle["counts"].encode("ascii")}
    return int(pycocotools.mask.area(rle))


def model_version(provenance: Provenance) -> str:
    """One line naming what produced the labels: models with weights versions, then the ontology."""
    models = " ".join(f"{name}@{version}" for name, version in sorted(provenance.models.items()))
    return f"{provenance.tool} {models} ontology:{provenance.ontology_hash[:12]}".strip()


def provenance_dict(provenance: Provenance) -> dict:
    return {"tool": provenance.tool, "models": dict(provenance.models), "ontology_hash": provenance.ontology_hash,
            "parameters": dict(provenance.parameters)}


def class_index(classes: Sequence[str]) -> dict[str, int]:
    """Class name -> 0-based index, checked to be unique."""
    index = {name: position for position, name in enumerate(classes)}
    if len(index) != len(classes):
        raise ValueError(f"class names must be unique, got {list(classes)}")
    return index


def known_class(obj: LabeledObject, index: dict[str, int], image: LabeledImage) -> int:
    try:
        return index[obj.class_name]
    except KeyError:
        raise ValueError(f"{image.key}: object class {obj.class_name!r} is not one of {sorted(index)}") from None


# One tolerance (pixels) for every class, or one per class name (a class not named: 1 pixel).
PolygonTolerance = Union[float, Mapping[str, float]]
DEFAULT_POLYGON_TOLERANCE = 1.0


def polygon_tolerance_for(obj: LabeledObject, tolerance: PolygonTolerance) -> float:
    if isinstance(tolerance, Mapping):
        return float(tolerance.get(obj.class_name, DEFAULT_POLYGON_TOLERANCE))
    return float(tolerance)


def check_mask_format(mask_format: str) -> None:
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask_format must be one of {MASK_FORMATS}, got {mask_format!r}")


def image_file(image: LabeledImage, image_root: Path | str | None) -> Path | None:
    """The image's file on this machine: under `image_root` by its key, else its source if that is a
    local file; None when neither exists."""
    if image_root is not None:
        path = Path(image_root) / image.key
        return path if path.is_file() else None
    path = Path(image.source)
    return path if "://" not in image.source and path.is_file() else None


class JsonArrayWriter:
    """Appends JSON values to a temporary file, one at a time, to be spliced into a final document
    as the elements of an array by `copy_into`."""

    def __init__(self, directory: Path):
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8", dir=directory)
        self.count = 0

    def append(self, value) -> None:
        if self.count:
            self._file.write(",\n")
        json.dump(value, self._file, separators=(",", ":"))
        self.count += 1

    def copy_into(self, out: IO[str]) -> None:
        self._file.seek(0)
        shutil.copyfileobj(self._file, out)

    def close(self) -> None:
        self._file.close()


@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """Write `path` through a temporary file renamed into place, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as out:
        yield out
    partial.replace(path)
