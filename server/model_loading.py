"""Which models `labelgate serve` runs (from --model, --models-file, --demo-weights or the classic
flags), and loading each of them: by its kind, in its own thread, warmed up, then served."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict

import numpy as np

from labelgate.models import kinds
from labelgate.models.backend import Backend, ConceptItem, DecodeItem, DetectItem, SamPrompt
from labelgate.models.default_pair import default_specs, demo_extra_specs
from labelgate.models.kinds import DETECT, PROMPT_SEGMENT, SEGMENT_CONCEPTS, LoadContext, ModelKind
from labelgate.models.spec import ModelSpec, check_unique, read_models_file
from labelgate.core.errors import NotReady
from labelgate.server.openmp_workers import in_worker_thread
from labelgate.server.settings import Settings

log = logging.getLogger(__name__)
_LOAD_LOCKS: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_RETRY_LOG_EVERY = 30  # a remote model that is not ready yet is retried every second; say so every 30


def model_specs(settings: Settings) -> list[ModelSpec]:
    """The models to serve, checked against their kinds (plugins imported first). The default pair
    (classic flags, or the demo weights) comes first unless only --model/--models-file are given."""
    kinds.load_plugins(settings.plugin)
    specs = [ModelSpec.parse(text) for text in settings.model]
    if settings.models_file:
        specs += read_models_file(settings.models_file)
    if settings.demo_weights or not specs:
        specs = default_specs(settings) + specs
        specs += demo_extra_specs(settings, taken={spec.name for spec in specs})
    check_unique(specs)
    for spec in specs:
        kinds.get(spec.kind).check(spec)
    return specs


def cache_bytes_by_model(specs: list[ModelSpec], total: int) -> dict[str, int]:
    """Each feature-caching model's share of --cache-bytes: its `cache_share`, or an equal part of
    what the explicit shares leave."""
    caching = [spec for spec in specs if kinds.get(spec.kind).capabilities & {PROMPT_SEGMENT, SEGMENT_CONCEPTS}]
    explicit = {spec.name: float(spec.options["cache_share"]) for spec in caching if "cache_share" in spec.options}
    if sum(explicit.values()) > 1.0 + 1e-9:
        raise ValueError(f"the models' cache_share values add up to {sum(explicit.values()):g}, over 1")
    rest = [spec.name for spec in caching if spec.name not in explicit]
    left = max(0.0, 1.0 - sum(explicit.values()))
    shares = {**explicit, **{name: left / len(rest) for name in rest}}
    return {name: max(1, int(total * share)) for name, share in shares.items()}


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {requested}: CUDA is not available on this machine; use --device cpu")
    return requested


def load_context(settings: Settings) -> LoadContext:
    device = "cpu" if settings.backend == "triton" else resolve_device(settings.device)
    return LoadContext(device=device, dtype=settings.dtype, backend=settings.backend, triton_url=settings.triton_url)


async def load_model(spec: ModelSpec, context: LoadContext, warmup: bool) -> tuple[Backend, ModelKind]:
    """Loads (and warms) one model in a thread; while a remote one is not ready, waits for it."""
    kind = kinds.get(spec.kind)
    attempt = 0
    while True:
        backend = None
        try:
            backend = await in_worker_thread(_load_in_turn, kind, spec, context)
            if backend.info.name != spec.name:
                raise ValueError(f"model kind {kind.name} loaded {spec.name} under another name, {backend.info.name}")
            if warmup:
                await in_worker_thread(warm_up, backend, kind)
            return backend, kind
        except NotReady as error:
            if backend is not None:
                backend.close()
            if attempt % _RETRY_LOG_EVERY == 0:
                log.warning("waiting for model %s (NOT_SERVING): %s", spec.name, error)
            attempt += 1
            await asyncio.sleep(1.0)


def _load_in_turn(kind: ModelKind, spec: ModelSpec, context: LoadContext) -> Backend:
    # Models of one load group load one after another: building two at once races in library
    # code that is not thread-safe (two SAM 2 builds broke in torch.jit.script, two transformers
    # from_pretrained calls on meta tensors). Other groups do not wait.
    with _LOAD_LOCKS[kind.load_group or kind.name]:
        return kind.load(spec, context)


def warm_up(backend, kind: ModelKind) -> None:
    """One pass through each capability it serves, so the first user request does not pay for lazy init."""
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    capabilities = kinds.served_capabilities(backend, kind)
    if PROMPT_SEGMENT in capabilities:
        features = _first(backend.encode([image]))
        point = SamPrompt(np.array([[10.0, 10.0]], np.float32), np.array([1], np.int32), np.zeros((0, 4), np.float32), True)
        _first(backend.decode([DecodeItem(features, point)]))
    if DETECT in capabilities:
        _first(backend.detect([DetectItem(image, "object .", 0.35, 0.25)]))
    if SEGMENT_CONCEPTS in capabilities:
        _first(backend.segment_concepts([ConceptItem(_first(backend.encode([image])), "object")]))


def _first(results):
    if isinstance(results[0], Exception):
        raise results[0]
    return results[0]
