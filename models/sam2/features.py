"""SAM 2 image features exactly as `SAM2ImagePredictor.set_image` keeps them.

Shared by the torch backend (which runs it per batch) and the ONNX export (which traces it), so
an exported image encoder computes the same features: both high-res maps and `no_mem_embed`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from labelgate.models.backend import ImageFeatures


def image_feature_levels(model: torch.nn.Module, batch: torch.Tensor) -> list[torch.Tensor]:
    """(B, C, H, W) per feature level, finest first; the last level is the image embedding."""
    backbone_out = model.forward_image(batch)
    _, vision_feats, _, feat_sizes = model._prepare_backbone_features(backbone_out)
    if model.directly_add_no_mem_embed:
        vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
    # (HW, B, C) -> (B, C, H, W)
    return [feat.permute(1, 2, 0).reshape(batch.shape[0], -1, *size) for feat, size in zip(vision_feats, feat_sizes)]


def image_features(image_embed: torch.Tensor, high_res_feats: Sequence[torch.Tensor], orig_hw) -> ImageFeatures:
    """One image's features (no batch axis), with the byte size the feature cache budgets by."""
    nbytes = sum(t.numel() * t.element_size() for t in (image_embed, *high_res_feats))
    return ImageFeatures(image_embed=image_embed, high_res_feats=tuple(high_res_feats), orig_hw=tuple(orig_hw), nbytes=nbytes)
