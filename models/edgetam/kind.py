"""The `edgetam` model kind: EdgeTAM (a RepViT encoder in front of SAM 2's prompt encoder and mask
decoder) for quick clicks on CPUs, from a transformers `save_pretrained` directory
(`yonigozlan/EdgeTAM-hf` on the Hub), in process."""

from __future__ import annotations

from labelgate.models.in_process import pretrained_directory
from labelgate.models.kinds import PROMPT_SEGMENT, LoadContext, ModelKind, register
from labelgate.models.spec import ModelSpec


def load(spec: ModelSpec, context: LoadContext):
    directory = pretrained_directory(spec, context, "edgetam", "download yonigozlan/EdgeTAM-hf, e.g. "
                                     "`hf download yonigozlan/EdgeTAM-hf --local-dir DIR`")
    from labelgate.models.edgetam.torch_backend import EdgeTamTorchBackend

    return EdgeTamTorchBackend.from_pretrained(directory, device=context.device, name=spec.name)


KIND = register(ModelKind(
    name="edgetam",
    summary="EdgeTAM: SAM 2's masks from clicks and boxes behind a fast RepViT encoder, for CPUs "
            "(weights: a transformers save_pretrained directory)",
    capabilities=frozenset({PROMPT_SEGMENT}),
    load=load,
    heavy_stages=frozenset({"encode"}),
    batches_on_cpu=False,
    load_group="transformers",
))
