"""The `grounding_dino` model kind: open-vocabulary boxes from text, from a transformers
`save_pretrained` directory, in process (torch) or through Triton (`--backend triton`, where the
directory provides the processor)."""

from __future__ import annotations

from pathlib import Path

from labelgate.models.kinds import DETECT, LoadContext, ModelKind, register
from labelgate.models.spec import ModelSpec


def load(spec: ModelSpec, context: LoadContext):
    directory = Path(spec.weights)
    if not (directory / "config.json").is_file():
        raise ValueError(f"model {spec.name}: {directory} is not a save_pretrained directory (labelgate weights fetch grounding-dino-tiny)")
    if context.backend == "triton":
        from labelgate.models.triton.connect import connect_grounding_dino

        return connect_grounding_dino(context.triton_url, directory, name=spec.name)
    from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend

    return GroundingDinoBackend.from_pretrained(directory, device=context.device, name=spec.name)


KIND = register(ModelKind(
    name="grounding_dino",
    summary="Grounding DINO: boxes from a text prompt (weights: a transformers save_pretrained directory)",
    capabilities=frozenset({DETECT}),
    load=load,
    heavy_stages=frozenset({"detect"}),
    load_group="transformers",
))
