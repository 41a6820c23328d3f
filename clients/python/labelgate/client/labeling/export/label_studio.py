"""Label Studio tasks with predictions (`tasks.json`, for the project's Import), and the labeling
config (`label_config.xml`) whose control names the predictions use.

A mask is a `brushlabels` region in Label Studio's own brush RLE, a boxes-only object a
`rectanglelabels` region; each region carries its score, each prediction the mean score and the
`model_version` of what produced it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from labelgate.client.labeling.export.brush import mask_to_brush_rle
from labelgate.client.labeling.export.common import (
    atomic_text,
    class_index,
    decode_mask,
    known_class,
    model_version,
)
from labelgate.client.labeling.records import LabeledImage, LabeledObject, Provenance

# Label Studio serves local files under LOCAL_FILES_DOCUMENT_ROOT at this path: set that root to the dataset root.
DEFAULT_IMAGE_URL = "/data/local-files/?d={key}"


def export_label_studio(images: Iterable[LabeledImage], classes: Sequence[str], provenance: Provenance, out_dir: Path,
                        *, image_url: str = DEFAULT_IMAGE_URL, image_urls: Mapping[str, str] | None = None,
                        brush_from_name: str = "brush", box_from_name: str = "box", to_name: str = "image", **_) -> list[Path]:
    """`image_url`: the task's `data.image`, a template with {key} (URL-quoted) and {source};
    `image_urls`: key -> `data.image` for the images that have their own (a Label Studio source's).
    Tasks are written one by one into a JSON list; every image gets a prediction, an empty one when
    nothing was found (so the project shows which images the model has seen)."""
    out_dir = Path(out_dir)
    index = class_index(classes)
    version = model_version(provenance)
    image_urls = image_urls or {}
    tasks = out_dir / "tasks.json"
    with atomic_text(tasks) as out:
        out.write("[\n")
        for count, image in enumerate(images):
            for obj in image.objects:
                known_class(obj, index, image)
            task = {
                "data": {"image": image_urls.get(image.key) or image_url.format(key=quote(image.key), source=image.source),
                         "key": image.key, "split": image.split},
                "predictions": [prediction(image, version, brush_from_name, box_from_name, to_name)],
            }
            out.write((",\n" if count else "") + json.dumps(task, separators=(",", ":")))
        out.write("\n]\n")
    config = out_dir / "label_config.xml"
    with atomic_text(config) as out:
        out.write(label_config(classes, brush_from_name, box_from_name, to_name))
    return [tasks, config]


def prediction(image: LabeledImage, version: str, brush_from_name: str = "brush", box_from_name: str = "box",
               to_name: str = "image") -> dict:
    """One Label Studio prediction of an image: its regions, their mean score and `version`."""
    regions = [_region(obj, image, f"r{position}", brush_from_name, box_from_name, to_name)
               for position, obj in enumerate(image.objects)]
    score = sum(obj.score for obj in image.objects) / len(image.objects) if image.objects else 0.0
    return {"model_version": version, "score": round(score, 5), "result": regions}


def label_config(classes: Sequence[str], brush_from_name: str = "brush", box_from_name: str = "box",
                 to_name: str = "image") -> str:
    """A labeling config with the brush and rectangle controls the predictions refer to."""
    labels = "".join(f"    <Label value={quoteattr(name)}/>\n" for name in classes)
    return (f"<View>\n  <Image name={quoteattr(to_name)} value=\"$image\" zoom=\"true\"/>\n"
            f"  <BrushLabels name={quoteattr(brush_from_name)} toName={quoteattr(to_name)}>\n{labels}  </BrushLabels>\n"
            f"  <RectangleLabels name={quoteattr(box_from_name)} toName={quoteattr(to_name)}>\n{labels}"
            f"  </RectangleLabels>\n</View>\n")


def _region(obj: LabeledObject, image: LabeledImage, region_id: str, brush_from_name: str, box_from_name: str,
            to_name: str) -> dict:
    width, height = image.width, image.height
    if obj.rle is not None:
        kind, from_name = "brushlabels", brush_from_name
        value = {"format": "rle", "rle": mask_to_brush_rle(decode_mask(obj)), kind: [obj.class_name]}
    else:
        kind, from_name = "rectanglelabels", box_from_name
        x0, y0, x1, y1 = (float(v) for v in obj.box)
        value = {"x": 100.0 * x0 / width, "y": 100.0 * y0 / height, "width": 100.0 * (x1 - x0) / width,
                 "height": 100.0 * (y1 - y0) / height, "rotation": 0, kind: [obj.class_name]}
    return {"id": region_id, "from_name": from_name, "to_name": to_name, "type": kind, "original_width": width,
            "original_height": height, "image_rotation": 0, "value": value, "score": round(float(obj.score), 5)}
