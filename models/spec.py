"""Which models to serve: `NAME=KIND:WEIGHTS[,KEY=VALUE...]` on the command line, or a YAML file.

    --model tiny=sam2:weights/sam2.1_hiera_tiny.pt
    --model large=sam2:weights/sam2.1_hiera_large.pt,config=configs/sam2.1/sam2.1_hiera_l.yaml
    --model gdino=grounding_dino:weights/grounding-dino-tiny

or, with `--models-file models.yaml`:

    models:
      - name: tiny
        kind: sam2
        weights: weights/sam2.1_hiera_tiny.pt
      - {name: gdino, kind: grounding_dino, weights: weights/grounding-dino-tiny, cache_share: 0.2}

Options every kind takes: `cache_share` (this model's fraction of --cache-bytes; by default the
models that cache features share it equally). The rest belong to the kind (`labelgate serve
--list-kinds`). Parsing only: no torch, nothing loaded here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A comma starts an option only where KEY= follows, so values may hold commas (stages=[1,1,1,1]).
_OPTION_START = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*=)")
COMMON_OPTIONS = {"cache_share": "this model's fraction (0-1] of --cache-bytes for its features"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    weights: str
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not NAME.fullmatch(self.name):
            raise ValueError(f"model name {self.name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        if not self.kind:
            raise ValueError(f"model {self.name}: no kind (e.g. sam2, grounding_dino)")
        share = self.options.get("cache_share")
        if share is not None and not _is_share(share):
            raise ValueError(f"model {self.name}: cache_share={share!r} must be a number in (0, 1]")

    @classmethod
    def parse(cls, text: str) -> "ModelSpec":
        """`NAME=KIND:WEIGHTS[,KEY=VALUE...]` (WEIGHTS may be empty for a kind that needs none)."""
        name, sep, rest = text.partition("=")
        kind, colon, tail = rest.partition(":")
        if not sep or not colon:
            raise ValueError(f"--model {text!r}: expected NAME=KIND:WEIGHTS[,KEY=VALUE...], e.g. tiny=sam2:weights/sam2.1_hiera_tiny.pt")
        weights, *pairs = _OPTION_START.split(tail)
        options = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            options[key.strip()] = value.strip()
        return cls(name.strip(), kind.strip(), weights.strip(), options)

    def option(self, key: str, default: str = "") -> str:
        return self.options.get(key, default)

    def unknown_options(self, known: Mapping[str, str]) -> list[str]:
        return sorted(set(self.options) - set(known) - set(COMMON_OPTIONS))


def read_models_file(path: Path | str) -> list[ModelSpec]:
    """The specs of a YAML file `models: [{name, kind, weights, OPTION: VALUE...}, ...]`."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"--models-file {path}: {error}") from None
    entries = document.get("models") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"--models-file {path}: expected a top-level 'models:' list")
    specs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"name", "kind"} <= set(entry):
            raise ValueError(f"--models-file {path}: entry {index} needs at least 'name' and 'kind'")
        options = {str(k): str(v) for k, v in entry.items() if k not in ("name", "kind", "weights")}
        specs.append(ModelSpec(str(entry["name"]), str(entry["kind"]), str(entry.get("weights") or ""), options))
    return specs


def check_unique(specs: list[ModelSpec]) -> None:
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise ValueError(f"model name {spec.name!r} is given twice: each model needs its own name")
        seen.add(spec.name)


def _is_share(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and 0 < value <= 1
