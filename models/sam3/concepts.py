"""SAM 3's image features as its backend caches them (the queries and instances are
`labelgate.models.backend`'s ConceptItem and ConceptInstance, the clicks its DecodeItem)."""

from __future__ import annotations

from dataclasses import dataclass

from labelgate.models.backend import ImageFeatures


@dataclass(frozen=True)
class ConceptImageFeatures:
    """SAM 3 vision features of one image, as `Sam3Model.get_vision_features` returns them (batch axis
    of 1, torch tensors): every FPN level and its position encoding. `nbytes` counts the FPN levels
    only: the position encodings depend on the shape alone and the backend shares one copy of them
    among all images. `tracker`: the tracker's SAM 2-style features for clicks, from the same ViT pass
    (None where the weights have no tracker); `nbytes` counts them too."""

    fpn_hidden_states: tuple
    fpn_position_encoding: tuple
    orig_hw: tuple[int, int]
    nbytes: int
    tracker: ImageFeatures | None = None
