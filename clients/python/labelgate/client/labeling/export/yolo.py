"""YOLO detection or segmentation labels, as Ultralytics and supervision load them:
`images/<split>/<name>`, `labels/<split>/<stem>.txt`, and `data.yaml`.

Both loaders want each split flat in one folder, so a nested key becomes one file name with its
slashes percent-encoded (`a/b/c.jpg` -> `a%2Fb%2Fc.jpg`), which keeps names distinct.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from labelgate.client.labeling.export.common import (
    DEFAULT_POLYGON_TOLERANCE,
    PolygonTolerance,
    SPLITS,
    atomic_text,
    class_index,
    decode_mask,
    image_file,
    known_class,
    polygon_tolerance_for,
)
from labelgate.client.labeling.export.polygons import mask_to_polygons, merge_polygons
from labelgate.client.labeling.records import LabeledImage, LabeledObject, Provenance

TASKS = ("segment", "detect")
LINKS = ("symlink", "hardlink", "copy", "none")


def flat_name(key: str) -> str:
    return quote(key, safe=" !#$&'()+,;=@[]^_`{}~-.")


def export_yolo(images: Iterable[LabeledImage], classes: Sequence[str], provenance: Provenance, out_dir: Path, *,
                task: str = "segment", polygon_tolerance: PolygonTolerance = DEFAULT_POLYGON_TOLERANCE,
                image_root: Path | str | None = None, link: str = "symlink", **_) -> list[Path]:
    """task "segment": one normalised polygon per object (all its parts joined into one, as Ultralytics
    does; a boxes-only object as its box's four corners); "detect": `class cx cy w h`. Images are
    linked (or copied) from `image_root`/key, else from the image's source path; "none" skips them.
    Returns data.yaml and the labels and images folders (not every file: a dataset can be large)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    out_dir = Path(out_dir)
    index = class_index(classes)
    for split in SPLITS:
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    for image in images:
        name = flat_name(image.key)
        lines = [_line(obj, known_class(obj, index, image), image, task, polygon_tolerance_for(obj, polygon_tolerance)) for obj in image.objects]
        label = out_dir / "labels" / image.split / (Path(name).stem + ".txt")
        with atomic_text(label) as out:
            out.write("".join(line + "\n" for line in lines))
        if link != "none":
            _place_image(image, image_root, out_dir / "images" / image.split / name, link)
    data_yaml = out_dir / "data.yaml"
    with atomic_text(data_yaml) as out:
        out.write(_data_yaml(out_dir, classes))
    return [data_yaml, out_dir / "labels", out_dir / "images"]


def _line(obj: LabeledObject, class_id: int, image: LabeledImage, task: str, tolerance: float) -> str:
    width, height = image.width, image.height
    x0, y0, x1, y1 = (float(v) for v in obj.box)
    if task == "detect":
        values = [(x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
    else:
        polygon = merge_polygons(mask_to_polygons(decode_mask(obj), tolerance)) if obj.rle is not None else None
        if polygon is None:  # no mask, or only specks: the box
            points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        else:
            points = polygon.tolist()
        values = [v for x, y in points for v in (x / width, y / height)]
    return " ".join([str(class_id)] + [f"{min(max(v, 0.0), 1.0):.6f}" for v in values])


def _place_image(image: LabeledImage, image_root, target: Path, link: str) -> None:
    source = image_file(image, image_root)
    if source is None:
        where = image_root or image.source
        raise FileNotFoundError(f"{image.key}: no image file at {where}: pass image_root= or link='none'")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    if link == "symlink":
        target.symlink_to(source.resolve())
    elif link == "hardlink":
        os.link(source, target)
    else:
        shutil.copyfile(source, target)


def _data_yaml(out_dir: Path, classes: Sequence[str]) -> str:
    names = "".join(f"  {index}: {_yaml_string(name)}\n" for index, name in enumerate(classes))
    return (f"path: {_yaml_string(str(out_dir.resolve()))}\ntrain: images/train\nval: images/val\n"
            f"nc: {len(classes)}\nnames:\n{names}")


def _yaml_string(text: str) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(text)
