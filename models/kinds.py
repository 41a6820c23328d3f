"""Model kinds as plugins. The server knows a model only through its kind: what it can do, how it
batches on each device, and how it loads from a spec. Adding a model family is a new folder with a
`kind.py` that builds a `ModelKind`, plus one line in `_BUILT_IN` (or a plugin module named with
`labelgate serve --plugin MODULE` that calls `register`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from labelgate.models.backend import Backend
from labelgate.models.spec import ModelSpec

# What a backend of the kind implements (see labelgate.models.backend for the interfaces).
PROMPT_SEGMENT = "segment_prompts"  # encode(images) -> features, cached; decode(features + points/boxes) -> masks
DETECT = "detect"  # detect(images + caption) -> boxes, scores, phrases
SEGMENT_CONCEPTS = "segment_concepts"  # encode(images), cached; segment_concepts(features + phrase/exemplars) -> instances
TRACK = "track_video"  # open_video(frames) -> a session: prompts on any frame, masks propagated (labelgate.models.video_tracking)
CAPABILITIES = {
    PROMPT_SEGMENT: "masks from points and boxes, on cached image features",
    DETECT: "boxes from a text prompt",
    SEGMENT_CONCEPTS: "a mask for every instance of a concept (a phrase or exemplar boxes)",
    TRACK: "objects tracked through a video from prompts on any frame",
}


@dataclass(frozen=True)
class LoadContext:
    """Where and how `labelgate serve` runs its models."""

    device: str = "cpu"  # resolved: cpu, cuda, cuda:1
    dtype: str = "fp32"
    backend: str = "torch"  # torch (in process) or triton (remote)
    triton_url: str = ""


@dataclass(frozen=True)
class ModelKind:
    name: str
    summary: str
    capabilities: frozenset[str]
    load: Callable[[ModelSpec, LoadContext], Backend]
    options: Mapping[str, str] = field(default_factory=dict)  # option -> help
    # Stages that take seconds (an image encoder, a detector): on a CPU they yield to the quick ones.
    heavy_stages: frozenset[str] = frozenset()
    # Whether requests share one forward pass on a CPU. Where a pass costs the sum of its requests
    # (SAM 2), waiting for company only adds latency: each request then runs alone.
    batches_on_cpu: bool = True
    # Kinds in one load group load one model at a time: their library's loading is not thread-safe
    # (transformers' from_pretrained, torch.jit in sam2's builder). Empty: the kind's own name.
    load_group: str = ""

    def __post_init__(self):
        unknown = set(self.capabilities) - set(CAPABILITIES)
        if not self.capabilities or unknown:
            raise ValueError(f"model kind {self.name}: capabilities must be some of {sorted(CAPABILITIES)}, got {sorted(self.capabilities)}")

    def max_batch_size(self, device: str, configured: int) -> int:
        return configured if self.batches_on_cpu or not device.startswith("cpu") else 1

    def check(self, spec: ModelSpec) -> None:
        unknown = spec.unknown_options(self.options)
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ValueError(f"model {spec.name} ({self.name}): unknown option(s) {', '.join(unknown)}; this kind takes: {known}")


_BUILT_IN = {
    "sam2": "labelgate.models.sam2.kind",
    "grounding_dino": "labelgate.models.grounding_dino.kind",
    "sam3": "labelgate.models.sam3.kind",
    "edgetam": "labelgate.models.edgetam.kind",
}
_REGISTERED: dict[str, ModelKind] = {}


def served_capabilities(backend: Backend, kind: ModelKind) -> frozenset[str]:
    """What a loaded model serves: its kind's capabilities whose interface its backend implements (a
    Triton SAM 2 does not track video), less what the backend says it cannot (`Backend.unable`)."""
    from labelgate.models.backend import ConceptSegmentationBackend, DetectionBackend, PromptSegmentationBackend
    from labelgate.models.video_tracking import VideoTrackingBackend

    interfaces = {PROMPT_SEGMENT: PromptSegmentationBackend, DETECT: DetectionBackend,
                  SEGMENT_CONCEPTS: ConceptSegmentationBackend, TRACK: VideoTrackingBackend}
    implemented = {c for c in kind.capabilities if isinstance(backend, interfaces.get(c, Backend))}
    return frozenset(implemented) - backend.unable()


def register(kind: ModelKind) -> ModelKind:
    """Makes `kind` available to `--model NAME=KIND:...`; a plugin module calls this on import."""
    existing = _REGISTERED.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    _REGISTERED[kind.name] = kind
    return kind


def get(name: str) -> ModelKind:
    if name not in _REGISTERED and name in _BUILT_IN:
        importlib.import_module(_BUILT_IN[name])  # registers itself; imports torch only when used
    try:
        return _REGISTERED[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; known: {', '.join(names())} (or add one with --plugin MODULE)") from None


def names() -> list[str]:
    return sorted(set(_BUILT_IN) | set(_REGISTERED))


def load_plugins(plugins) -> None:
    """Imports each plugin, a module name or a .py file (on import it registers its kinds)."""
    for plugin in plugins:
        try:
            if plugin.endswith(".py"):
                _import_file(Path(plugin))
            else:
                importlib.import_module(plugin)
        except (ImportError, OSError) as error:
            raise ValueError(f"--plugin {plugin}: cannot import it ({error})") from None


def _import_file(path: Path) -> None:
    name = f"labelgate_plugin_{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"not a Python file: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
