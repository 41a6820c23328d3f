"""What the service takes and returns: plain dataclasses, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass, field

from labelgate.models.backend import Detection
from labelgate.server.masks import EncodedMask

# Numbers left at 0 and formats left empty take the defaults `labelgate.server.validation` sets.


@dataclass(frozen=True)
class ImageRef:
    """Either encoded image bytes or the id of an image sent before."""

    data: bytes = b""
    image_id: str = ""


@dataclass(frozen=True)
class PointPrompt:
    x: float
    y: float
    negative: bool = False


@dataclass(frozen=True)
class BoxPrompt:
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)


@dataclass(frozen=True)
class ExemplarPrompt:
    """A box showing an example of the concept (or, negative, a counter-example)."""

    box: BoxPrompt
    negative: bool = False


@dataclass(frozen=True)
class SegmentQuery:
    image: ImageRef
    points: tuple[PointPrompt, ...] = ()
    boxes: tuple[BoxPrompt, ...] = ()
    text: str = ""
    multimask_output: bool = False
    formats: tuple[str, ...] = ()
    box_threshold: float = 0.0
    text_threshold: float = 0.0
    model: str = ""
    detector_model: str = ""
    refine_mask_id: str = ""  # a mask_id from an earlier response: its logits become the mask input
    exemplars: tuple[ExemplarPrompt, ...] = ()  # for a concept model
    nms_iou_threshold: float = 0.0  # for a concept model
    max_instances: int = 0  # for a concept model


@dataclass(frozen=True)
class DetectQuery:
    image: ImageRef
    text: str
    box_threshold: float = 0.0
    text_threshold: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class EmbedResult:
    image_id: str
    width: int
    height: int
    cache_hit: bool


@dataclass(frozen=True)
class ObjectResult:
    masks: list[EncodedMask]
    label: str = ""
    detection_score: float = 0.0
    prompt_box: BoxPrompt | None = None
    mask_ids: tuple[str, ...] = ()  # one per mask where they can be refined, else empty


@dataclass(frozen=True)
class SegmentResult:
    image_id: str
    width: int
    height: int
    objects: list[ObjectResult] = field(default_factory=list)
    cache_hit: bool = False


@dataclass(frozen=True)
class DetectResult:
    image_id: str
    width: int
    height: int
    detections: list[Detection] = field(default_factory=list)
