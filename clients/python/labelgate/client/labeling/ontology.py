"""The ontology of a labeling job: which classes to label, the text prompts that find each, and
what to keep of what they find. Read from YAML (or JSON):

    model: ""                  # optional: a SAM 3 model name (Segment(text, model=NAME)) or a SAM 2 one
    detector: ""               # optional: the Grounding DINO model (with SAM 2)
    nms: {iou: 0.5, agnostic_iou: 0.0, by: mask}   # by: mask or box; agnostic_iou 0 = off
    defaults: {box_threshold: 0.35, text_threshold: 0.25, output: masks, min_area: 0, polygon_tolerance: 1.0}
    classes:
      car: a car                               # one prompt
      person:                                  # several prompts, and per-class settings
        prompts: [a pedestrian, a cyclist]
        box_threshold: 0.3
        output: boxes                          # masks or boxes
        min_area: 64                           # pixels (mask area, or box area for boxes)

The order of `classes` is the order of the dataset's categories.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

OUTPUTS = ("masks", "boxes")
NMS_BY = ("mask", "box")
_CLASS_SETTINGS = ("box_threshold", "text_threshold", "output", "min_area", "polygon_tolerance")
_TOP_KEYS = {"model", "detector", "nms", "defaults", "classes"}


class OntologyError(ValueError):
    """The ontology file is malformed; the message says where and how to fix it."""


@dataclass(frozen=True)
class OntologyClass:
    name: str
    prompts: tuple[str, ...]
    box_threshold: float = 0.35
    text_threshold: float = 0.25
    output: str = "masks"
    min_area: float = 0.0
    polygon_tolerance: float = 1.0


@dataclass(frozen=True)
class NmsSettings:
    iou: float = 0.5  # within a class, across its prompts; 1.0 keeps everything
    agnostic_iou: float = 0.0  # across classes; 0 = off
    by: str = "mask"


@dataclass(frozen=True)
class Ontology:
    classes: tuple[OntologyClass, ...]
    nms: NmsSettings = field(default_factory=NmsSettings)
    model: str = ""
    detector: str = ""

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def to_dict(self) -> dict:
        return asdict(self)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        """sha256 of the normalised ontology: the same however the file was written."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: dict) -> "Ontology":
        return parse_ontology(data)


def load_ontology(path: Path) -> Ontology:
    import yaml  # JSON is YAML too

    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        raise OntologyError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse_ontology(data)
    except OntologyError as error:
        raise OntologyError(f"{path}: {error}") from None


def parse_ontology(data) -> Ontology:
    if not isinstance(data, dict) or "classes" not in data:
        raise OntologyError("expected a mapping with 'classes: {name: prompt or [prompts]}'")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise OntologyError(f"unknown key(s) {sorted(unknown)}; expected some of {sorted(_TOP_KEYS)}")
    defaults = _settings(data.get("defaults") or {}, "defaults")
    classes = data["classes"]
    if not isinstance(classes, dict) or not classes:
        raise OntologyError("'classes' must map at least one class name to its prompt(s)")
    parsed = tuple(_class(str(name), spec, defaults) for name, spec in classes.items())
    nms = _nms(data.get("nms") or {})
    return Ontology(parsed, nms, str(data.get("model") or ""), str(data.get("detector") or ""))


def _class(name: str, spec, defaults: dict) -> OntologyClass:
    if not name.strip():
        raise OntologyError("a class name is empty")
    if isinstance(spec, (str, list)):
        spec = {"prompts": spec}
    if not isinstance(spec, dict) or "prompts" not in spec:
        raise OntologyError(f"class {name!r}: expected a prompt, a list of prompts, or a mapping with 'prompts'")
    extra = set(spec) - {"prompts", *_CLASS_SETTINGS}
    if extra:
        raise OntologyError(f"class {name!r}: unknown key(s) {sorted(extra)}; expected 'prompts' and {list(_CLASS_SETTINGS)}")
    prompts = spec["prompts"]
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, list) or not prompts:
        raise OntologyError(f"class {name!r}: give at least one prompt")
    cleaned = tuple(dict.fromkeys(_prompt(name, p) for p in prompts))
    settings = {**defaults, **_settings({k: v for k, v in spec.items() if k != "prompts"}, f"class {name!r}")}
    return OntologyClass(name, cleaned, **settings)


def _prompt(name: str, prompt) -> str:
    if not isinstance(prompt, str) or not prompt.strip(" ."):
        raise OntologyError(f"class {name!r}: prompts must be non-empty text, got {prompt!r}")
    text = " ".join(prompt.strip().rstrip(".").split())
    if "." in text:
        raise OntologyError(f"class {name!r}: prompt {prompt!r} contains '.', which separates phrases; "
                            "give each phrase as its own prompt")
    return text


def _settings(spec: dict, where: str) -> dict:
    if not isinstance(spec, dict):
        raise OntologyError(f"{where}: expected a mapping")
    unknown = set(spec) - set(_CLASS_SETTINGS)
    if unknown:
        raise OntologyError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {list(_CLASS_SETTINGS)}")
    out = {}
    for key in ("box_threshold", "text_threshold"):
        if key in spec:
            out[key] = _number(spec[key], f"{where}: {key}", 0.0, 1.0)
    for key in ("min_area", "polygon_tolerance"):
        if key in spec:
            out[key] = _number(spec[key], f"{where}: {key}", 0.0, float("inf"))
    if "output" in spec:
        if spec["output"] not in OUTPUTS:
            raise OntologyError(f"{where}: output must be one of {OUTPUTS}, got {spec['output']!r}")
        out["output"] = spec["output"]
    return out


def _nms(spec) -> NmsSettings:
    if not isinstance(spec, dict) or set(spec) - {"iou", "agnostic_iou", "by"}:
        raise OntologyError("nms: expected a mapping with some of 'iou', 'agnostic_iou', 'by'")
    by = spec.get("by", "mask")
    if by not in NMS_BY:
        raise OntologyError(f"nms: by must be one of {NMS_BY}, got {by!r}")
    return NmsSettings(_number(spec.get("iou", 0.5), "nms: iou", 0.0, 1.0),
                       _number(spec.get("agnostic_iou", 0.0), "nms: agnostic_iou", 0.0, 1.0), by)


def _number(value, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise OntologyError(f"{what}: expected a number in [{low}, {high}], got {value!r}")
    return float(value)
