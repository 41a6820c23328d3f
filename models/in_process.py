"""What kinds that load a transformers `save_pretrained` directory in process (EdgeTAM, SAM 3) check first."""

from __future__ import annotations

from pathlib import Path

from labelgate.models.kinds import LoadContext
from labelgate.models.spec import ModelSpec


def pretrained_directory(spec: ModelSpec, context: LoadContext, kind: str, how_to_get: str) -> Path:
    """The spec's weights directory, once the context is one the kind runs in (torch, fp32)."""
    if context.backend != "torch":
        raise ValueError(f"model {spec.name}: the {kind} kind runs in process only (--backend torch)")
    if context.dtype != "fp32":
        raise ValueError(f"model {spec.name}: the {kind} kind runs in fp32 only (--dtype fp32)")
    directory = Path(spec.weights)
    if not (directory / "config.json").is_file():
        raise ValueError(f"model {spec.name}: {directory} is not a save_pretrained directory ({how_to_get})")
    return directory
