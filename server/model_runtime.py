"""A loaded model as the service runs it: per capability, its batchers and (for prompt segmentation)
its feature cache, built from what the model's kind declares, never from its family name."""

from __future__ import annotations

from dataclasses import dataclass

from labelgate.models.backend import (
    Backend,
    DetectionBackend,
    ModelInfo,
    PromptSegmentationBackend,
)
from labelgate.models.kinds import DETECT, PROMPT_SEGMENT, SEGMENT_CONCEPTS, ModelKind, served_capabilities
from labelgate.server.batcher import NORMAL, DynamicBatcher
from labelgate.server.metrics import Metrics
from labelgate.server.settings import Settings
from labelgate.server.feature_cache import TieredFeatureCache, build_feature_cache


@dataclass
class Segmenter:
    """A model that segments from points and boxes: its feature cache, encoder and decoder batchers."""

    backend: PromptSegmentationBackend
    features: TieredFeatureCache
    encoder: DynamicBatcher
    decoder: DynamicBatcher
    # False where the cache and encoder are another part's, which starts and closes them (SAM 3: one
    # encode serves its concepts and its clicks).
    owns_encoder: bool = True

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    def key(self, image_id: str) -> tuple[str, str, str]:
        return (image_id, self.info.name, self.info.version)

    def start(self) -> None:
        if self.owns_encoder:
            self.encoder.start()
        self.decoder.start()

    async def close(self) -> None:
        if self.owns_encoder:
            await self.encoder.close()
        await self.decoder.close()
        if self.owns_encoder:
            await self.features.close()


@dataclass
class Detector:
    """A model that finds boxes for a text prompt, behind its batcher."""

    backend: DetectionBackend
    batcher: DynamicBatcher

    @property
    def info(self) -> ModelInfo:
        return self.backend.info

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()


@dataclass
class ConceptSegmenter(Segmenter):
    """A model that finds every instance of a concept: its feature cache and encoder as a Segmenter's,
    and its `decoder` batcher runs the concept queries."""

    @property
    def concepts(self) -> DynamicBatcher:
        return self.decoder


@dataclass
class ModelRuntime:
    """One served model: what it can do (`segmenter`, `detector`, `concepts`) and its backend."""

    backend: Backend
    kind: ModelKind
    capabilities: frozenset[str] = frozenset()  # what it serves (kinds.served_capabilities)
    segmenter: Segmenter | None = None
    detector: Detector | None = None
    concepts: ConceptSegmenter | None = None

    def _parts(self):
        return [part for part in (self.segmenter, self.detector, self.concepts) if part is not None]

    def start(self) -> None:
        for part in self._parts():
            part.start()

    async def close(self) -> None:
        for part in self._parts():
            if part is not None:
                await part.close()
        self.backend.close()


def build_runtime(backend: Backend, kind: ModelKind, settings: Settings, metrics: Metrics, cache_bytes: int) -> ModelRuntime:
    """The batchers (sized by the kind's batching on this device) and caches of a loaded model."""
    info = backend.info
    max_batch = kind.max_batch_size(info.device, settings.max_batch_size)
    delay = settings.max_batch_delay_ms / 1000.0

    def batcher(stage: str, run) -> DynamicBatcher:
        # Seconds-long stages on the CPU yield it to the quick ones (a click's decoder), which share its cores.
        heavy = stage in kind.heavy_stages and info.device == "cpu"
        priority = settings.heavy_stage_priority if heavy else NORMAL
        return DynamicBatcher(stage, info.name, run, max_batch, delay, settings.max_queue, metrics.batch, worker_priority=priority)

    capabilities = served_capabilities(backend, kind)
    runtime = ModelRuntime(backend, kind, capabilities)
    if PROMPT_SEGMENT in capabilities:
        features = build_feature_cache(settings, metrics, backend, cache_bytes)
        runtime.segmenter = Segmenter(backend, features, batcher("encode", backend.encode), batcher("decode", backend.decode))
    if DETECT in capabilities:
        runtime.detector = Detector(backend, batcher("detect", backend.detect))
    if SEGMENT_CONCEPTS in capabilities:
        concepts = batcher("concepts", backend.segment_concepts)
        if runtime.segmenter is not None:  # one image encode and cache for clicks and concepts
            runtime.concepts = ConceptSegmenter(backend, runtime.segmenter.features, runtime.segmenter.encoder, concepts,
                                                owns_encoder=False)
        else:
            features = build_feature_cache(settings, metrics, backend, cache_bytes)
            runtime.concepts = ConceptSegmenter(backend, features, batcher("encode", backend.encode), concepts)
    return runtime
