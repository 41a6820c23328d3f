"""Request checks with messages a user can act on, and the defaults of fields left unset: the one
owner of both. Each failure raises InvalidInput."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from labelgate.core.errors import InvalidInput
from labelgate.server.imaging import looks_like_image_id
from labelgate.server.masks import COCO_RLE, FORMATS, PNG, POLYGONS
from labelgate.server.queries import BoxPrompt, DetectQuery, SegmentQuery
from labelgate.server.quoting import quoted
from labelgate.server.refinement import MASK_ID_FORMAT, looks_like_mask_id

DEFAULT_BOX_THRESHOLD = 0.35  # Grounding DINO's demo values, for a threshold left at 0
DEFAULT_TEXT_THRESHOLD = 0.25
DEFAULT_FORMATS = (COCO_RLE,)
DEFAULT_NMS_IOU_THRESHOLD = 0.5  # concept instances of one phrase overlapping more than this are one
DEFAULT_MAX_INSTANCES = 100
MAX_INSTANCES_LIMIT = 1000
_FORMAT_NAMES = {COCO_RLE: "COCO_RLE", POLYGONS: "POLYGONS", PNG: "PNG"}

# Far above any real model name; a longer one is a mistake, not a name to look up and echo.
MAX_MODEL_NAME_CHARS = 256


@dataclass(frozen=True)
class Limits:
    max_points: int = 64
    max_boxes: int = 100
    max_image_pixels: int = 100_000_000
    max_text_chars: int = 2000


def check_image_ref(query_image, what: str) -> None:
    if not query_image.data and not query_image.image_id:
        raise InvalidInput(f"{what}: no image: set Image.data to the encoded image bytes, or Image.image_id to an id from an earlier call")
    if not query_image.data and not looks_like_image_id(query_image.image_id):
        raise InvalidInput(
            f"{what}: image_id {quoted(query_image.image_id)} is not an image id: ids are 'img_' and 32 lower-case "
            "hex digits, as given in the image_id of an earlier response"
        )


def check_model_name(name: str, field: str) -> None:
    if len(name) > MAX_MODEL_NAME_CHARS:
        raise InvalidInput(
            f"the {field} field: a name of {len(name)} characters is over the limit of {MAX_MODEL_NAME_CHARS}: "
            "use a name from ListModels, or leave it empty for the default"
        )


def check_threshold(value: float, name: str) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"{name} must be between 0 and 1 (0 = the default), got {value}")


def checked_segment(query: SegmentQuery, limits: Limits) -> SegmentQuery:
    """The query with its defaults, after the checks that need no image: prompt kinds, counts,
    finiteness, box order, formats."""
    check_image_ref(query.image, "Segment")
    check_model_name(query.model, "model")
    check_model_name(query.detector_model, "detector_model")
    has_geometry = bool(query.points or query.boxes)
    if (query.text.strip() or query.exemplars) and has_geometry:
        raise InvalidInput("a text prompt or exemplars cannot be combined with points or boxes: send them in separate Segment calls")
    if not query.text.strip() and not has_geometry and not query.exemplars:
        raise InvalidInput("empty prompt: give at least one point, one box, or a text prompt such as 'cat . dog .'")
    if len(query.exemplars) > limits.max_boxes:
        raise InvalidInput(f"{len(query.exemplars)} exemplars is over this server's limit of {limits.max_boxes} (--max-boxes)")
    for index, exemplar in enumerate(query.exemplars):
        check_box_shape(exemplar.box, index, "exemplar")
    if len(query.points) > limits.max_points:
        raise InvalidInput(f"{len(query.points)} points is over this server's limit of {limits.max_points} (--max-points)")
    if len(query.boxes) > limits.max_boxes:
        raise InvalidInput(f"{len(query.boxes)} boxes is over this server's limit of {limits.max_boxes} (--max-boxes)")
    if query.points and len(query.boxes) > 1:
        raise InvalidInput(
            f"points can be combined with exactly one box, got {len(query.boxes)} boxes: "
            "send several boxes without points, or one box with its points"
        )
    for index, point in enumerate(query.points):
        if not (math.isfinite(point.x) and math.isfinite(point.y)):
            raise InvalidInput(f"point {index} has a non-finite coordinate ({point.x}, {point.y})")
    for index, box in enumerate(query.boxes):
        check_box_shape(box, index)
    if query.text:
        check_text(query.text, limits)
    check_threshold(query.box_threshold, "box_threshold")
    check_threshold(query.text_threshold, "text_threshold")
    if query.refine_mask_id:
        check_refinement(query)
    check_threshold(query.nms_iou_threshold, "nms_iou_threshold")
    if query.max_instances > MAX_INSTANCES_LIMIT:
        raise InvalidInput(f"max_instances {query.max_instances} is over the limit of {MAX_INSTANCES_LIMIT} (0 = the default)")
    return replace(query, formats=checked_formats(query.formats), **_thresholds(query),
                   nms_iou_threshold=query.nms_iou_threshold or DEFAULT_NMS_IOU_THRESHOLD,
                   max_instances=query.max_instances or DEFAULT_MAX_INSTANCES)


def check_refinement(query: SegmentQuery) -> None:
    """A refinement names a mask id and refines one object with points and/or one box."""
    if not looks_like_mask_id(query.refine_mask_id):
        raise InvalidInput(
            f"refine_mask_id {quoted(query.refine_mask_id)} is not a mask id: ids are {MASK_ID_FORMAT}, "
            "as given in Mask.mask_id of an earlier Segment response"
        )
    if query.text.strip():
        raise InvalidInput("refine_mask_id cannot be combined with a text prompt: refine with points and at most one box")
    if len(query.boxes) > 1:
        raise InvalidInput(
            f"refine_mask_id refines one object, got {len(query.boxes)} boxes: send the clicks and at most one box"
        )


def checked_formats(formats) -> tuple[str, ...]:
    """Known formats, each once, in the caller's order (none: the default)."""
    unknown = [value for value in formats if value not in FORMATS]
    if unknown:
        raise InvalidInput(f"unknown mask format {unknown[0][:20]}; use {', '.join(_FORMAT_NAMES.values())}")
    return tuple(dict.fromkeys(formats)) or DEFAULT_FORMATS


def _thresholds(query) -> dict[str, float]:
    return {"box_threshold": query.box_threshold or DEFAULT_BOX_THRESHOLD,
            "text_threshold": query.text_threshold or DEFAULT_TEXT_THRESHOLD}


def check_box_shape(box: BoxPrompt, index: int, what: str = "box") -> None:
    values = box.as_tuple()
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"{what} {index} has a non-finite coordinate {values}")
    if box.x_max <= box.x_min or box.y_max <= box.y_min:
        raise InvalidInput(
            f"{what} {index} is empty or inverted: (x_min {box.x_min}, y_min {box.y_min}, x_max {box.x_max}, y_max {box.y_max}); "
            "x_max must be > x_min and y_max > y_min"
        )


def check_in_image(query: SegmentQuery, width: int, height: int) -> None:
    """Coordinates may touch the image edge (x == width) but not go past it."""
    for index, point in enumerate(query.points):
        if not (0 <= point.x <= width and 0 <= point.y <= height):
            raise InvalidInput(f"point {index} ({point.x}, {point.y}) is outside the {width} x {height} image")
    boxes = [("box", index, box) for index, box in enumerate(query.boxes)]
    boxes += [("exemplar", index, exemplar.box) for index, exemplar in enumerate(query.exemplars)]
    for what, index, box in boxes:
        if not (0 <= box.x_min and 0 <= box.y_min and box.x_max <= width and box.y_max <= height):
            raise InvalidInput(f"{what} {index} {box.as_tuple()} is outside the {width} x {height} image")


def check_text(text: str, limits: Limits) -> None:
    if not text.replace(".", " ").strip():
        raise InvalidInput("empty text prompt: name what to find, e.g. 'cat . dog .'")
    if len(text) > limits.max_text_chars:
        raise InvalidInput(f"text prompt of {len(text)} characters is over the limit of {limits.max_text_chars}")


def checked_detect(query: DetectQuery, limits: Limits) -> DetectQuery:
    """The query with its defaults, once checked."""
    check_image_ref(query.image, "Detect")
    check_model_name(query.model, "model")
    check_text(query.text, limits)
    check_threshold(query.box_threshold, "box_threshold")
    check_threshold(query.text_threshold, "text_threshold")
    return replace(query, **_thresholds(query))
