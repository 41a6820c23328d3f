"""The `sam2` model kind: SAM 2 / 2.1 image predictors from official `{'model': state_dict}` checkpoints,
in process (torch) or through Triton (`--backend triton`)."""

from __future__ import annotations

from pathlib import Path

from labelgate.models import checkpoints
from labelgate.models.kinds import PROMPT_SEGMENT, TRACK, LoadContext, ModelKind, register
from labelgate.models.spec import ModelSpec

OPTIONS = {
    "config": "bundled sam2 config, e.g. configs/sam2.1/sam2.1_hiera_l.yaml (default: the official one for the checkpoint's file name)",
    "overrides": "hydra overrides separated by ';', e.g. ++model.image_size=512",
}


def config_for(spec: ModelSpec) -> str:
    if spec.option("config"):
        return spec.option("config")
    filename = Path(spec.weights).name
    for known in checkpoints.SAM2_SPECS:
        if known.filename == filename:
            return known.config
    raise ValueError(f"model {spec.name}: which SAM 2 config builds {filename}? add config=configs/sam2.1/sam2.1_hiera_<t|s|b+|l>.yaml")


def overrides_of(spec: ModelSpec) -> tuple[str, ...]:
    return tuple(part.strip() for part in spec.option("overrides").split(";") if part.strip())


def load(spec: ModelSpec, context: LoadContext):
    if context.backend == "triton":
        from labelgate.models.triton.connect import connect_sam2

        return connect_sam2(context.triton_url, name=spec.name)
    from labelgate.models.sam2.video_backend import Sam2TrackingTorchBackend

    checkpoint = Path(spec.weights) if spec.weights else None
    if checkpoint is not None and not checkpoint.is_file():
        raise ValueError(f"model {spec.name}: no SAM 2 checkpoint at {checkpoint} (labelgate weights fetch sam2.1-hiera-tiny)")
    return Sam2TrackingTorchBackend.from_checkpoint(config_for(spec), checkpoint, context.device, overrides_of(spec), name=spec.name,
                                                    dtype=context.dtype)


KIND = register(ModelKind(
    name="sam2",
    summary="SAM 2 / 2.1: masks from clicks and boxes, and objects tracked through videos (in process; weights: the official .pt checkpoint)",
    capabilities=frozenset({PROMPT_SEGMENT, TRACK}),
    load=load,
    options=OPTIONS,
    heavy_stages=frozenset({"encode"}),
    batches_on_cpu=False,
))
