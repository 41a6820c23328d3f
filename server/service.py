"""The transport-neutral service: validate, resolve the image, consult the cache, batch, encode masks.

A click on a cached image reads top to bottom: `segment` -> `_resolve` (image id known) ->
`_features` (cache hit) -> decoder batcher -> backend -> `_encode_objects`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, TypeVar

import numpy as np

from labelgate.models.backend import DecodedMasks, DecodeItem, Detection, DetectItem, ImageFeatures, ModelInfo, SamPrompt
from labelgate.models.grounding_dino.torch_backend import normalize_caption
from labelgate.server.batcher import DynamicBatcher
from labelgate.server.cache import ByteLRUCache
from labelgate.server.errors import InvalidInput, NotFound, Unsupported
from labelgate.server.imaging import decode_image
from labelgate.server.masks import encode_mask
from labelgate.server.metrics import Metrics
from labelgate.server.queries import (
    BoxPrompt,
    DetectQuery,
    DetectResult,
    EmbedResult,
    ImageRef,
    ObjectResult,
    SegmentQuery,
    SegmentResult,
)
from labelgate.server.shared_cache import TieredFeatureCache
from labelgate.server.validation import Limits, check_detect, check_image_ref, check_in_image, check_segment_prompt

T = TypeVar("T")


@dataclass
class Segmenter:
    """A SAM 2 model with its feature cache and its encoder and decoder batchers."""

    backend: object
    features: TieredFeatureCache
    encoder: DynamicBatcher
    decoder: DynamicBatcher

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    def key(self, image_id: str) -> tuple[str, str, str]:
        return (image_id, self.info.name, self.info.version)


@dataclass
class Detector:
    backend: object
    batcher: DynamicBatcher

    @property
    def info(self) -> ModelInfo:
        return self.backend.info


@dataclass(frozen=True)
class StoredImage:
    """A received image, kept encoded (much smaller than pixels) for requests that send its id."""

    data: bytes
    width: int
    height: int


class _RequestImage:
    """The image of one request: its id and size always, its pixels decoded only when needed."""

    def __init__(self, image_id: str, width: int, height: int, pixels: np.ndarray | None, data: bytes | None, service):
        self.image_id, self.width, self.height = image_id, width, height
        self._pixels, self._data, self._service = pixels, data, service

    async def pixels(self) -> np.ndarray:
        if self._pixels is None:
            if self._data is None:
                raise NotFound(_unknown_image_message(self.image_id))
            self._pixels = (await self._service._decode(self._data)).pixels
        return self._pixels


def _unknown_image_message(image_id: str) -> str:
    return (
        f"unknown image_id {image_id!r}: this server has not seen that image or has evicted it from its cache; "
        "send the image bytes in Image.data (the response gives the id to use for later calls)"
    )


class LabelgateService:
    def __init__(
        self,
        segmenters: dict[str, Segmenter],
        detectors: dict[str, Detector],
        images: ByteLRUCache[StoredImage],
        limits: Limits,
        metrics: Metrics,
    ):
        if not segmenters:
            raise ValueError("at least one SAM 2 model is needed")
        self.segmenters, self.detectors = segmenters, detectors
        self.images, self.limits, self.metrics = images, limits, metrics
        self.default_segmenter = next(iter(segmenters))
        self.default_detector = next(iter(detectors), "")

    # --- public operations -------------------------------------------------------------------

    async def embed(self, image: ImageRef, model: str = "", deadline: float | None = None) -> EmbedResult:
        check_image_ref(image, "Embed")
        segmenter = self._segmenter(model)
        request_image = await self._resolve(image, segmenter)
        _, hit = await self._features(segmenter, request_image, deadline)
        return EmbedResult(request_image.image_id, request_image.width, request_image.height, hit)

    async def segment(self, query: SegmentQuery, deadline: float | None = None) -> SegmentResult:
        check_segment_prompt(query, self.limits)
        segmenter = self._segmenter(query.model)
        detector = self._detector(query.detector_model) if query.text.strip() else None
        request_image = await self._resolve(query.image, segmenter)
        check_in_image(query, request_image.width, request_image.height)
        if detector is None:
            features, hit = await self._features(segmenter, request_image, deadline)
            prompt = SamPrompt(
                points=np.array([(p.x, p.y) for p in query.points], dtype=np.float32).reshape(-1, 2),
                labels=np.array([0 if p.negative else 1 for p in query.points], dtype=np.int32),
                boxes=np.array([b.as_tuple() for b in query.boxes], dtype=np.float32).reshape(-1, 4),
                multimask_output=query.multimask_output,
            )
            detections = None
        else:
            # The detector and the image encoder are independent: run them side by side.
            detections, (features, hit) = await _both(
                self._detect(detector, request_image, query.text, query.box_threshold, query.text_threshold, deadline),
                self._features(segmenter, request_image, deadline),
            )
            if not detections:
                return SegmentResult(request_image.image_id, request_image.width, request_image.height, [], hit)
            prompt = SamPrompt(
                points=np.zeros((0, 2), np.float32),
                labels=np.zeros((0,), np.int32),
                boxes=np.array([d.box for d in detections], dtype=np.float32),
                multimask_output=query.multimask_output,
            )
        decoded: DecodedMasks = await segmenter.decoder.submit(DecodeItem(features, prompt), deadline)
        objects = await self._timed("encode_masks", asyncio.to_thread(_encode_objects, decoded, query, detections))
        return SegmentResult(request_image.image_id, request_image.width, request_image.height, objects, hit)

    async def detect(self, query: DetectQuery, deadline: float | None = None) -> DetectResult:
        check_detect(query, self.limits)
        detector = self._detector(query.model)
        request_image = await self._resolve(query.image, None)
        detections = await self._detect(detector, request_image, query.text, query.box_threshold, query.text_threshold, deadline)
        return DetectResult(request_image.image_id, request_image.width, request_image.height, detections)

    def list_models(self) -> list[tuple[ModelInfo, bool]]:
        models = [(s.info, name == self.default_segmenter) for name, s in self.segmenters.items()]
        models += [(d.info, name == self.default_detector) for name, d in self.detectors.items()]
        return models

    async def close(self) -> None:
        for segmenter in self.segmenters.values():
            await segmenter.encoder.close()
            await segmenter.decoder.close()
            await segmenter.features.close()
        for detector in self.detectors.values():
            await detector.batcher.close()

    # --- steps ------------------------------------------------------------------------------

    def _segmenter(self, name: str) -> Segmenter:
        segmenter = self.segmenters.get(name or self.default_segmenter)
        if segmenter is None:
            raise NotFound(f"unknown SAM 2 model {name!r}; this server has {sorted(self.segmenters)} (see ListModels)")
        return segmenter

    def _detector(self, name: str) -> Detector:
        if not self.detectors:
            raise Unsupported(
                "this server runs without a Grounding DINO model, so text prompts are unavailable; "
                "start it with --gdino-model DIR"
            )
        detector = self.detectors.get(name or self.default_detector)
        if detector is None:
            raise NotFound(f"unknown Grounding DINO model {name!r}; this server has {sorted(self.detectors)} (see ListModels)")
        return detector

    async def _decode(self, data: bytes):
        return await self._timed("decode_image", asyncio.to_thread(decode_image, data, self.limits.max_image_pixels))

    async def _resolve(self, image: ImageRef, segmenter: Segmenter | None) -> _RequestImage:
        if image.data:
            decoded = await self._decode(image.data)
            if self.images.peek(decoded.image_id) is None:
                self.images.put(decoded.image_id, StoredImage(image.data, decoded.width, decoded.height))
            return _RequestImage(decoded.image_id, decoded.width, decoded.height, decoded.pixels, None, self)
        stored = self.images.get(image.image_id)
        if stored is not None:
            return _RequestImage(image.image_id, stored.width, stored.height, None, stored.data, self)
        features = await segmenter.features.lookup(segmenter.key(image.image_id)) if segmenter else None
        if features is not None:
            height, width = features.orig_hw
            return _RequestImage(image.image_id, width, height, None, None, self)
        raise NotFound(_unknown_image_message(image.image_id))

    async def _features(self, segmenter: Segmenter, image: _RequestImage, deadline: float | None):
        async def encode() -> ImageFeatures:
            return await segmenter.encoder.submit(await image.pixels(), deadline)

        return await segmenter.features.get_or_compute(segmenter.key(image.image_id), encode)

    async def _detect(self, detector: Detector, image: _RequestImage, text: str, box_threshold: float,
                      text_threshold: float, deadline: float | None) -> list[Detection]:
        try:
            caption = normalize_caption(text)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        item = DetectItem(await image.pixels(), caption, box_threshold, text_threshold)
        return await detector.batcher.submit(item, deadline)

    async def _timed(self, stage: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await work
        finally:
            self.metrics.stage_seconds.labels(stage).observe(time.perf_counter() - started)


async def _both(first: Awaitable, second: Awaitable) -> tuple:
    """Both results, or the first error once both have finished (no orphaned work)."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return tuple(results)


def _encode_objects(decoded: DecodedMasks, query: SegmentQuery, detections: list[Detection] | None) -> list[ObjectResult]:
    objects = []
    for index in range(decoded.masks.shape[0]):
        masks = [encode_mask(mask, float(score), query.formats) for mask, score in zip(decoded.masks[index], decoded.scores[index])]
        if detections is not None:
            detection = detections[index]
            objects.append(ObjectResult(masks, detection.label, detection.score, BoxPrompt(*detection.box)))
        else:
            box = query.boxes[index] if query.boxes else None
            objects.append(ObjectResult(masks, prompt_box=box))
    return objects
