"""Typed, immutable results, converted from the protobuf responses."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pycocotools.mask
from PIL import Image, ImageDraw

from labelgate.v1 import labelgate_pb2 as pb

Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in pixels
Polygon = tuple[np.ndarray, bool]  # (N x 2 float32 x, y points, is_hole)


@dataclass(frozen=True, eq=False)  # eq would compare ndarrays and raise
class Mask:
    """One predicted mask. `rle`, `polygons` and `png` are set only for the formats requested.

    `bbox` is the tight box of the mask pixels, max exclusive (None for an empty mask); `rle` is
    pycocotools' compressed RLE as a dict ``{"size": [h, w], "counts": str}``.
    """

    score: float
    bbox: Optional[Box]
    area: int
    rle: Optional[dict]
    polygons: list[Polygon]
    png: Optional[bytes]
    shape: Optional[tuple[int, int]] = None  # (height, width) of the image, for polygons
    mask_id: str = ""  # pass the mask (or this id) as segment(..., refine=) to refine it; "" = cannot be

    def to_numpy(self) -> np.ndarray:
        """The mask as an H x W bool array, from the RLE, else the PNG, else the polygons (an
        approximation: request "coco_rle" or "png" for exact pixels)."""
        if self.rle is not None:
            rle = {"size": list(self.rle["size"]), "counts": self.rle["counts"].encode("ascii")}
            return pycocotools.mask.decode(rle).astype(bool)
        if self.png is not None:
            with Image.open(io.BytesIO(self.png)) as image:
                return np.asarray(image.convert("L")) > 127
        if self.polygons and self.shape is not None:
            return _rasterise(self.polygons, self.shape)
        if self.shape is not None and not self.polygons and self.area == 0:
            return np.zeros(self.shape, dtype=bool)
        raise ValueError("this mask carries no pixels: request formats=('coco_rle',) or ('png',)")


def _rasterise(polygons: list[Polygon], shape: tuple[int, int]) -> np.ndarray:
    """Outers filled, holes cut. The server's polygons run through the centres of boundary mask
    pixels, holes too, so a hole's outline is drawn back after cutting it."""
    height, width = shape
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    outers = [points for points, hole in polygons if not hole]
    holes = [points for points, hole in polygons if hole]
    for points in outers:
        draw.polygon([tuple(p) for p in points.tolist()], fill=1, outline=1)
    for points in holes:
        draw.polygon([tuple(p) for p in points.tolist()], fill=0, outline=0)
    for points in holes:
        draw.line([tuple(p) for p in points.tolist()] + [tuple(points[0].tolist())], fill=1)
    return np.asarray(canvas, dtype=bool)


@dataclass(frozen=True)
class SegmentedObject:
    """The masks for one object: one per point/box prompt, or per detection for text prompts.
    `label` and `detection_score` are set for text prompts; `prompt_box` is the user box or
    detection box that prompted it, if any. From a concept model (sam3) each instance is one
    object: its mask, its phrase as `label`, its score and its box as `prompt_box`."""

    masks: list[Mask]
    label: str = ""
    detection_score: float = 0.0
    prompt_box: Optional[Box] = None

    @property
    def best(self) -> Optional[Mask]:
        """The mask with the highest score (None if there are none)."""
        return max(self.masks, key=lambda mask: mask.score, default=None)


@dataclass(frozen=True)
class SegmentResult:
    image_id: str
    width: int
    height: int
    objects: list[SegmentedObject]
    cache_hit: bool


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    label: str


@dataclass(frozen=True)
class DetectResult:
    image_id: str
    width: int
    height: int
    detections: list[Detection]


@dataclass(frozen=True)
class EmbedResult:
    image_id: str
    width: int
    height: int
    cache_hit: bool


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # the model kind, e.g. "sam2" or "grounding_dino"
    version: str
    device: str
    is_default: bool
    capabilities: tuple[str, ...] = ()  # "segment_prompts", "detect"


# --- protobuf -> results ---------------------------------------------------------------------


def box_from_pb(box: pb.Box) -> Box:
    return (box.x_min, box.y_min, box.x_max, box.y_max)


def mask_from_pb(message: pb.Mask, shape: Optional[tuple[int, int]] = None) -> Mask:
    rle = None
    if message.HasField("rle"):
        rle = {"size": [int(n) for n in message.rle.size], "counts": message.rle.counts}
    polygons = [
        (np.asarray(polygon.points, dtype=np.float32).reshape(-1, 2), bool(polygon.hole))
        for polygon in message.polygons
    ]
    return Mask(
        score=message.score,
        bbox=box_from_pb(message.bbox) if message.HasField("bbox") else None,
        area=int(message.area),
        rle=rle,
        polygons=polygons,
        png=message.png or None,
        shape=shape,
        mask_id=message.mask_id,
    )


def segment_result_from_pb(response: pb.SegmentResponse) -> SegmentResult:
    shape = (response.height, response.width)
    return SegmentResult(
        image_id=response.image_id,
        width=response.width,
        height=response.height,
        objects=[
            SegmentedObject(
                masks=[mask_from_pb(mask, shape) for mask in obj.masks],
                label=obj.label,
                detection_score=obj.detection_score,
                prompt_box=box_from_pb(obj.prompt_box) if obj.HasField("prompt_box") else None,
            )
            for obj in response.objects
        ],
        cache_hit=response.cache_hit,
    )


def detect_result_from_pb(response: pb.DetectResponse) -> DetectResult:
    return DetectResult(
        image_id=response.image_id,
        width=response.width,
        height=response.height,
        detections=[Detection(box_from_pb(d.box), d.score, d.label) for d in response.detections],
    )


def embed_result_from_pb(response: pb.EmbedResponse) -> EmbedResult:
    return EmbedResult(response.image_id, response.width, response.height, response.cache_hit)


def model_info_from_pb(message: pb.ModelInfo) -> ModelInfo:
    return ModelInfo(message.name, message.kind, message.version, message.device, message.is_default,
                     tuple(message.capabilities))
