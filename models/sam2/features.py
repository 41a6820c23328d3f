"""SAM 2 image features exactly as `SAM2ImagePredictor.set_image` keeps them.

Shared by the torch backend (which runs it per batch) and the ONNX export (which traces it), so
an exported image encoder computes the same features: both high-res maps and `no_mem_embed`.
"""

from __future__ import annotations

import torch


def image_feature_levels(model: torch.nn.Module, batch: torch.Tensor) -> list[torch.Tensor]:
    """(B, C, H, W) per feature level, finest first; the last level is the image embedding."""
    backbone_out = model.forward_image(batch)
    _, vision_feats, _, feat_sizes = model._prepare_backbone_features(backbone_out)
    if model.directly_add_no_mem_embed:
        vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
    # (HW, B, C) -> (B, C, H, W)
    return [feat.permute(1, 2, 0).reshape(batch.shape[0], -1, *size) for feat, size in zip(vision_feats, feat_sizes)]
