"""The `sam3` model kind: SAM 3 concept segmentation (every instance of a phrase or of exemplar boxes)
and clicks (its tracker: points, boxes, a mask to refine) from a transformers directory (`facebook/sam3`
on the Hub, gated), in process."""

from __future__ import annotations

from labelgate.models.in_process import pretrained_directory
from labelgate.models.kinds import PROMPT_SEGMENT, SEGMENT_CONCEPTS, LoadContext, ModelKind, register
from labelgate.models.spec import ModelSpec


def load(spec: ModelSpec, context: LoadContext):
    directory = pretrained_directory(spec, context, "sam3", "facebook/sam3 is gated on the Hub: accept its license, "
                                     "then `hf download facebook/sam3 --local-dir DIR` with a token")
    from labelgate.models.sam3.torch_backend import Sam3ConceptBackend

    return Sam3ConceptBackend.from_pretrained(directory, device=context.device, name=spec.name)


KIND = register(ModelKind(
    name="sam3",
    summary="SAM 3: a mask for every instance of a phrase or of exemplar boxes, and masks from clicks "
            "(weights: a transformers directory, facebook/sam3's layout)",
    capabilities=frozenset({SEGMENT_CONCEPTS, PROMPT_SEGMENT}),
    load=load,
    heavy_stages=frozenset({"encode"}),
    batches_on_cpu=False,
    load_group="transformers",
))
