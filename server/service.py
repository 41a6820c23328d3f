"""The transport-neutral service: validate, resolve the image, consult the cache, batch, encode masks.

A click on a cached image reads top to bottom: `segment` -> `_resolve` (image id known) ->
`_features` (cache hit) -> decoder batcher -> backend -> `_encode_objects`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Awaitable, Sequence, TypeVar

import numpy as np

from labelgate.models.backend import ConceptItem, DecodedMasks, DecodeItem, Detection, DetectItem, ImageFeatures, ModelInfo, SamPrompt
from labelgate.models.instance_nms import suppress
from labelgate.models.kinds import CAPABILITIES, DETECT, PROMPT_SEGMENT, SEGMENT_CONCEPTS
from labelgate.server.cache import ByteLRUCache
from labelgate.core.errors import InvalidInput, NotFound, NotReady, Unsupported
from labelgate.server.imaging import decode_image
from labelgate.server.masks import encode_mask
from labelgate.server.metrics import Metrics
from labelgate.server.model_runtime import ConceptSegmenter, Detector, ModelRuntime, Segmenter
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
from labelgate.server.quoting import quoted
from labelgate.server.refinement import RefinableMask, new_mask_id
from labelgate.server.validation import (
    Limits,
    check_image_ref,
    check_in_image,
    check_model_name,
    checked_detect,
    checked_segment,
)

T = TypeVar("T")
CONCEPT_MASK_THRESHOLD = 0.5  # a pixel is in a concept instance's mask where its probability is over this


@dataclass(frozen=True)
class StoredImage:
    """A received image, kept encoded (much smaller than pixels) for requests that send its id."""

    data: bytes
    width: int
    height: int


class _RequestImage:
    """The image of one request: its id and size always, its pixels decoded only when needed, and
    once: the detector and the image encoder, running side by side, share one decode."""

    def __init__(self, image_id: str, width: int, height: int, pixels: np.ndarray | None, data: bytes | None, service):
        self.image_id, self.width, self.height = image_id, width, height
        self._pixels, self._data, self._service = pixels, data, service
        self._decoding: asyncio.Future | None = None

    async def pixels(self) -> np.ndarray:
        if self._pixels is None:
            if self._data is None:
                raise NotFound(_unknown_image_message(self.image_id))
            if self._decoding is None:
                self._decoding = asyncio.ensure_future(self._service._decode(self._data))
            # Shielded: a caller that goes away does not cancel the decode the others wait for.
            self._pixels = (await asyncio.shield(self._decoding)).pixels
        return self._pixels


def _unknown_image_message(image_id: str) -> str:
    return (
        f"unknown image_id {quoted(image_id)}: this server has not seen that image or has evicted it from its cache; "
        "send the image bytes in Image.data (the response gives the id to use for later calls)"
    )


class LabelgateService:
    """Routes each request by capability and model name. Models join as they finish loading
    (`serve`); until then a request naming one gets NotReady, and the others are served."""

    def __init__(self, images: ByteLRUCache[StoredImage], limits: Limits, metrics: Metrics,
                 expected: Sequence[tuple[str, frozenset[str]]], refinable: ByteLRUCache[RefinableMask]):
        self.images, self.limits, self.metrics, self.refinable = images, limits, metrics, refinable
        self.segmenters: dict[str, Segmenter] = {}
        self.detectors: dict[str, Detector] = {}
        self.concept_models: dict[str, ConceptSegmenter] = {}
        self.runtimes: dict[str, ModelRuntime] = {}
        self.loading = dict(expected)  # name -> capabilities, until served
        self.order = [name for name, _ in expected]
        self._choose_defaults()

    def _choose_defaults(self) -> None:
        """The first model (in --model order) able to do each thing, loaded or still loading."""
        able = {name: self.runtimes[name].capabilities if name in self.runtimes else self.loading.get(name, frozenset())
                for name in self.order}
        self.default_segmenter = next((name for name in self.order if PROMPT_SEGMENT in able[name]), "")
        self.default_detector = next((name for name in self.order if DETECT in able[name]), "")
        self.default_concepts = next((name for name in self.order if SEGMENT_CONCEPTS in able[name]), "")

    def serve(self, runtime: ModelRuntime) -> None:
        """Starts a loaded model's batchers and routes requests to it."""
        name = runtime.backend.info.name
        runtime.start()
        self.runtimes[name] = runtime
        if runtime.segmenter is not None:
            self.segmenters[name] = runtime.segmenter
        if runtime.detector is not None:
            self.detectors[name] = runtime.detector
        if runtime.concepts is not None:
            self.concept_models[name] = runtime.concepts
        expected = self.loading.pop(name, frozenset())
        if expected - runtime.capabilities:  # it cannot do all its kind promised: the defaults may move
            self._choose_defaults()

    # --- public operations -------------------------------------------------------------------

    async def embed(self, image: ImageRef, model: str = "", deadline: float | None = None) -> EmbedResult:
        check_image_ref(image, "Embed")
        check_model_name(model, "model")
        segmenter = self._segmenter(model)
        request_image = await self._resolve(image, segmenter)
        _, hit = await self._features(segmenter, request_image, deadline)
        return EmbedResult(request_image.image_id, request_image.width, request_image.height, hit)

    async def segment(self, query: SegmentQuery, deadline: float | None = None) -> SegmentResult:
        query = checked_segment(query, self.limits)
        concepts = self._concept_model(query)
        if concepts is not None:
            return await self._segment_concepts(concepts, query, deadline)
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
                mask_input=self._refined_logits(query, segmenter, request_image.image_id),
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
        if detections is None and len(objects) == 1 and decoded.low_res_logits is not None:  # one object: refinable
            mask_ids = self._keep_logits(decoded.low_res_logits[0], segmenter, request_image.image_id)
            objects = [replace(objects[0], mask_ids=mask_ids)]
        return SegmentResult(request_image.image_id, request_image.width, request_image.height, objects, hit)

    async def detect(self, query: DetectQuery, deadline: float | None = None) -> DetectResult:
        query = checked_detect(query, self.limits)
        detector = self._detector(query.model)
        request_image = await self._resolve(query.image, None)
        detections = await self._detect(detector, request_image, query.text, query.box_threshold, query.text_threshold, deadline)
        return DetectResult(request_image.image_id, request_image.width, request_image.height, detections)

    def list_models(self) -> list[tuple[ModelInfo, bool, frozenset[str]]]:
        """The served models: each with whether it is a default, and its capabilities."""
        defaults = {self.default_segmenter, self.default_detector, self.default_concepts}
        served = [self.runtimes[name] for name in self.order if name in self.runtimes]
        return [(runtime.backend.info, runtime.backend.info.name in defaults, runtime.capabilities) for runtime in served]

    async def close(self) -> None:
        for runtime in self.runtimes.values():
            await runtime.close()

    # --- steps ------------------------------------------------------------------------------

    def _concept_model(self, query: SegmentQuery) -> ConceptSegmenter | None:
        """The concept model a Segment goes to: exemplars always need one; text goes to one when
        `model` names it (otherwise to a detector, then a prompt segmenter)."""
        name = query.model
        names_one = name in self.concept_models or SEGMENT_CONCEPTS in self.loading.get(name, ())
        if query.exemplars or (query.text.strip() and names_one):
            return self._route(name or self.default_concepts, SEGMENT_CONCEPTS, self.concept_models)
        return None

    async def _segment_concepts(self, concepts: ConceptSegmenter, query: SegmentQuery, deadline: float | None) -> SegmentResult:
        """Every instance of each phrase (`car . person .`: one concept each), with the exemplars."""
        request_image = await self._resolve(query.image, concepts)
        check_in_image(query, request_image.width, request_image.height)
        features, hit = await self._features(concepts, request_image, deadline)
        boxes = np.array([e.box.as_tuple() for e in query.exemplars], np.float32).reshape(-1, 4)
        labels = np.array([0 if e.negative else 1 for e in query.exemplars], np.int64)
        phrases = [phrase.strip() for phrase in query.text.split(".") if phrase.strip()] or [""]
        items = [ConceptItem(features, phrase, query.box_threshold, CONCEPT_MASK_THRESHOLD, boxes, labels) for phrase in phrases]
        found = await asyncio.gather(*(concepts.concepts.submit(item, deadline) for item in items))
        instances = [instance for per_phrase in found for instance in per_phrase]
        instances = await asyncio.to_thread(suppress, instances, query.nms_iou_threshold, query.max_instances)
        objects = await self._timed("encode_masks", asyncio.to_thread(_encode_instances, instances, query.formats))
        return SegmentResult(request_image.image_id, request_image.width, request_image.height, objects, hit)

    def _segmenter(self, name: str) -> Segmenter:
        return self._route(name or self.default_segmenter, PROMPT_SEGMENT, self.segmenters)

    def _detector(self, name: str) -> Detector:
        return self._route(name or self.default_detector, DETECT, self.detectors)

    def _route(self, name: str, capability: str, served: dict):
        if name in served:
            return served[name]
        what = CAPABILITIES[capability]
        if not name:
            raise Unsupported(f"this server runs no model for {what}; start it with one (labelgate serve --model NAME=KIND:WEIGHTS)")
        if capability in self.loading.get(name, ()):
            raise NotReady(f"model {name} is still loading; retry shortly (grpc.health.v1 says SERVING once all are loaded)")
        able = sorted(served) + sorted(n for n, can in self.loading.items() if capability in can)
        if name in self.runtimes or name in self.loading:
            raise InvalidInput(f"model {name} cannot give {what}; the models that can: {able}")
        raise NotFound(f"unknown model {quoted(name)}; the models for {what}: {able} (see ListModels)")

    def _refined_logits(self, query: SegmentQuery, segmenter: Segmenter, image_id: str) -> np.ndarray | None:
        """The (1, 1, h, w) mask input of a refinement (None without one)."""
        if not query.refine_mask_id:
            return None
        stored = self.refinable.get(query.refine_mask_id)
        if stored is None:
            raise NotFound(
                f"unknown refine_mask_id {quoted(query.refine_mask_id)}: this server has not issued it or has evicted its "
                "logits (--refine-cache-bytes); segment again without refine_mask_id, sending all the clicks"
            )
        if stored.image_id != image_id:
            raise InvalidInput(
                f"refine_mask_id {query.refine_mask_id} is a mask of image {stored.image_id}, not of {image_id}: "
                "refine a mask on the image it was made for"
            )
        if (stored.model, stored.version) != (segmenter.info.name, segmenter.info.version):
            raise InvalidInput(
                f"refine_mask_id {query.refine_mask_id} is a mask of model {stored.model}, not of {segmenter.info.name}: "
                "refine it with the model that made it (the model field)"
            )
        return stored.logits[None, None]

    def _keep_logits(self, logits: np.ndarray, segmenter: Segmenter, image_id: str) -> tuple[str, ...]:
        """Keeps each mask's (h, w) logits for a later refinement; their ids, in mask order."""
        ids = []
        for mask_logits in logits:
            mask_id = new_mask_id()
            # A copy, not a view that would keep the whole batch's logits alive uncounted.
            self.refinable.put(mask_id, RefinableMask(image_id, segmenter.info.name, segmenter.info.version, mask_logits.copy()))
            ids.append(mask_id)
        return tuple(ids)

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

        return await segmenter.features.get_or_compute(segmenter.key(image.image_id), encode, deadline)

    async def _detect(self, detector: Detector, image: _RequestImage, text: str, box_threshold: float,
                      text_threshold: float, deadline: float | None) -> list[Detection]:
        item = DetectItem(await image.pixels(), text, box_threshold, text_threshold)
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


def _encode_instances(instances, formats) -> list[ObjectResult]:
    return [ObjectResult([encode_mask(i.mask, i.score, formats)], i.label, i.score, BoxPrompt(*i.box)) for i in instances]


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
