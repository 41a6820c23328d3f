"""Python arguments -> protobuf request messages. Requests are built without their image (bad
arguments fail before any image is encoded or sent); `with_image` adds it per attempt. Shared by
every client flavour."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from labelgate.v1 import labelgate_pb2 as pb

MASK_FORMATS = {"coco_rle": pb.COCO_RLE, "polygons": pb.POLYGONS, "png": pb.PNG}


def points_to_pb(points: Iterable[Sequence]) -> list[pb.Point]:
    """Each point is (x, y) or (x, y, negative)."""
    messages = []
    for index, point in enumerate(points):
        values = _as_tuple(point, "point", index, "(x, y) or (x, y, negative)")
        if len(values) not in (2, 3):
            raise ValueError(f"point {index}: expected (x, y) or (x, y, negative), got {point!r}")
        negative = bool(values[2]) if len(values) == 3 else False
        messages.append(pb.Point(x=float(values[0]), y=float(values[1]), negative=negative))
    return messages


def boxes_to_pb(boxes: Iterable[Sequence]) -> list[pb.Box]:
    """Each box is (x_min, y_min, x_max, y_max) in pixels."""
    messages = []
    for index, box in enumerate(boxes):
        values = _as_tuple(box, "box", index, "(x_min, y_min, x_max, y_max)")
        if len(values) != 4:
            raise ValueError(f"box {index}: expected (x_min, y_min, x_max, y_max), got {box!r}")
        x_min, y_min, x_max, y_max = (float(v) for v in values)
        messages.append(pb.Box(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max))
    return messages


_EXEMPLAR_SYNTAX = "(x_min, y_min, x_max, y_max) or (x_min, y_min, x_max, y_max, negative)"
_NEGATIVE_WORDS = {"neg", "negative"}
_POSITIVE_WORDS = {"pos", "positive"}


def exemplars_to_pb(exemplars: Iterable[Sequence]) -> list[pb.Exemplar]:
    """Each exemplar is a box, "objects like this", or a box with a fifth item saying whether it
    is negative ("not like this"): True/False, or "neg"/"pos"."""
    messages = []
    for index, exemplar in enumerate(exemplars):
        values = _as_tuple(exemplar, "exemplar", index, _EXEMPLAR_SYNTAX)
        if len(values) not in (4, 5):
            raise ValueError(f"exemplar {index}: expected {_EXEMPLAR_SYNTAX}, got {exemplar!r}")
        [box] = boxes_to_pb([values[:4]])
        negative = _negative(values[4], index) if len(values) == 5 else False
        messages.append(pb.Exemplar(box=box, negative=negative))
    return messages


def _negative(flag, index: int) -> bool:
    if isinstance(flag, str):
        if flag.lower() in _NEGATIVE_WORDS | _POSITIVE_WORDS:
            return flag.lower() in _NEGATIVE_WORDS
    elif flag in (True, False):  # also 0 and 1
        return bool(flag)
    raise ValueError(f"exemplar {index}: the fifth item must be True/'neg' (not like this) or False/'pos', got {flag!r}")


def _as_tuple(value, what: str, index: int, expected: str) -> tuple:
    try:
        return tuple(value)
    except TypeError:
        raise ValueError(f"{what} {index}: expected {expected}, got {value!r} (pass a list of {what}s)") from None


def formats_to_pb(formats: Iterable[str] | str) -> list[int]:
    if isinstance(formats, str):
        formats = (formats,)
    values = []
    for name in formats:
        key = str(name).lower()
        if key not in MASK_FORMATS:
            raise ValueError(f"unknown mask format {name!r}; choose from {sorted(MASK_FORMATS)}")
        values.append(MASK_FORMATS[key])
    return values


def with_image(request, image: pb.Image):
    """A copy of `request` with its `image` field set."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.image.CopyFrom(image)
    return copy


def refine_mask_id(refine) -> str:
    """The mask id of `refine`: a Mask from an earlier result, its mask_id, or None (no refinement)."""
    if refine is None:
        return ""
    mask_id = refine if isinstance(refine, str) else getattr(refine, "mask_id", None)
    if not isinstance(mask_id, str):
        raise ValueError(f"refine: expected a Mask from an earlier segment result or its mask_id, got {refine!r}")
    if refine is not mask_id and not mask_id:
        raise ValueError("refine: this mask has no mask_id (the server cannot refine masks of text prompts, "
                         "several boxes, or its Triton backend)")
    return mask_id


def max_instances_value(max_instances) -> int:
    if isinstance(max_instances, bool) or not isinstance(max_instances, int) or max_instances < 0:
        raise ValueError(f"max_instances must be a whole number >= 0 (0 = the server's default), got {max_instances!r}")
    return max_instances


def segment_request(*, points=(), boxes=(), text: str = "", multimask: bool = False,
                    formats=("coco_rle",), box_threshold: float = 0.0, text_threshold: float = 0.0,
                    model: str = "", detector_model: str = "", refine=None, exemplars=(),
                    nms_iou_threshold: float = 0.0, max_instances: int = 0) -> pb.SegmentRequest:
    return pb.SegmentRequest(
        points=points_to_pb(points),
        boxes=boxes_to_pb(boxes),
        text=text,
        multimask_output=multimask,
        formats=formats_to_pb(formats),
        box_threshold=box_threshold,
        text_threshold=text_threshold,
        model=model,
        detector_model=detector_model,
        refine_mask_id=refine_mask_id(refine),
        exemplars=exemplars_to_pb(exemplars),
        nms_iou_threshold=float(nms_iou_threshold),
        max_instances=max_instances_value(max_instances),
    )


def detect_request(*, text: str, box_threshold: float = 0.0, text_threshold: float = 0.0,
                   model: str = "") -> pb.DetectRequest:
    return pb.DetectRequest(text=text, box_threshold=box_threshold, text_threshold=text_threshold,
                            model=model)


def embed_request(*, model: str = "") -> pb.EmbedRequest:
    return pb.EmbedRequest(model=model)
