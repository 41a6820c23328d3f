"""The small batch-in/batch-out interface every backend implements.

Output lists have the length of the input list; a failed item is an Exception in its slot,
so one bad item never fails the batch. No protobuf, no grpc here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str  # the model kind's name (labelgate.models.kinds), e.g. "sam2"
    version: str  # content hash of the weights: a cache key part
    device: str


@dataclass(frozen=True)
class ImageFeatures:
    """SAM 2 image features for one image, as the predictor's `set_image` keeps them.

    Arrays are backend-native (torch tensors for the torch backend) without the batch axis.
    """

    image_embed: object
    high_res_feats: tuple
    orig_hw: tuple[int, int]
    nbytes: int


@dataclass(frozen=True)
class SamPrompt:
    """One decode request: SAM 2 prompt in original-image pixels.

    points: (N, 2) float32, labels: (N,) int32 (1 positive, 0 negative), boxes: (B, 4) float32.
    Points alone -> one object; B boxes -> B objects; points + one box -> one object.
    mask_input: (1, 1, h, w) float32 low-res logits of an earlier mask (`DecodedMasks.low_res_logits`),
    for one object only: SAM 2's `mask_input`, to refine that mask.
    """

    points: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    multimask_output: bool
    mask_input: np.ndarray | None = None

    @property
    def num_objects(self) -> int:
        return max(1, len(self.boxes))


@dataclass(frozen=True)
class DecodeItem:
    features: ImageFeatures
    prompt: SamPrompt


@dataclass(frozen=True)
class DecodedMasks:
    """masks: (objects, K, H, W) bool at the original size; scores: (objects, K) float32.
    low_res_logits: (objects, K, h, w) float32, clamped to [-32, 32] as `SAM2ImagePredictor.predict`
    returns them (h = w = 256 for 1024 px models), from backends that can take them back as
    `SamPrompt.mask_input`; None from the others."""

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray | None = None


@dataclass(frozen=True)
class DetectItem:
    image: np.ndarray  # H x W x 3 uint8 RGB
    caption: str  # as the caller wrote it; the backend normalises it the way its model expects
    box_threshold: float
    text_threshold: float


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in pixels
    score: float
    label: str


@dataclass(frozen=True)
class ConceptItem:
    """One concept query on one image's features.

    phrase: a short noun phrase ("red car"); empty with exemplar boxes, SAM 3's "visual" query.
    boxes: (B, 4) float32 exemplar boxes x0, y0, x1, y1 in original-image pixels; box_labels: (B,)
    1 for an example of the concept, 0 for a counter-example.
    score_threshold: keep instances whose score (detection x presence) is above it.
    mask_threshold: a pixel is in the mask where its probability is above it.
    """

    features: object  # the backend's own image features, from its encode()
    phrase: str
    score_threshold: float = 0.5
    mask_threshold: float = 0.5
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))


@dataclass(frozen=True)
class ConceptInstance:
    mask: np.ndarray  # H x W bool at the original size
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float  # sigmoid(detection logit) x sigmoid(presence logit)
    label: str  # the query's phrase as the caller wrote it (empty for exemplar boxes alone)


class Backend(ABC):
    """What the server drives on every backend: its identity, readiness and release."""

    info: ModelInfo

    def ready(self) -> str | None:
        """None when it can serve; else why not (a remote backend that lost its server)."""
        return None

    def unable(self) -> frozenset[str]:
        """Capabilities of its kind that this loaded backend cannot serve (its weights lack a part)."""
        return frozenset()

    def close(self) -> None:
        """Releases connections and memory; the backend is not used afterwards."""


class PromptSegmentationBackend(Backend):
    """Capability `segment_prompts`: image features once, then masks for any prompt on them."""

    @abstractmethod
    def encode(self, images: Sequence[np.ndarray]) -> list[Union[ImageFeatures, Exception]]: ...

    @abstractmethod
    def decode(self, items: Sequence[DecodeItem]) -> list[Union[DecodedMasks, Exception]]: ...


class DetectionBackend(Backend):
    """Capability `detect`: boxes for the phrases of a caption."""

    @abstractmethod
    def detect(self, items: Sequence[DetectItem]) -> list[Union[list[Detection], Exception]]: ...


class ConceptSegmentationBackend(Backend):
    """Capability `segment_concepts`: every instance of a named concept (a phrase, exemplar boxes, or
    both) on cached image features."""

    @abstractmethod
    def encode(self, images: Sequence[np.ndarray]) -> list[object]: ...

    @abstractmethod
    def segment_concepts(self, items: Sequence[ConceptItem]) -> list[Union[list[ConceptInstance], Exception]]: ...
