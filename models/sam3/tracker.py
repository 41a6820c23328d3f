"""SAM 3's interactive (SAM 2-style) segmentation through transformers' `Sam3TrackerModel` +
`Sam3TrackerProcessor`, on the ViT output the concept detector computed: in `facebook/sam3` the tracker
has its own FPN neck (`tracker_neck.*`) on the detector's ViT (`detector_model.vision_encoder.backbone.*`,
which `Sam3TrackerModel.from_pretrained` loads as its own backbone), so one ViT pass serves both.

`tracker_levels` is `Sam3TrackerModel.get_image_embeddings` from the ViT output on; `decode_group` is
`Sam3TrackerModel(image_embeddings=...)` + `post_process_masks`, as transformers' own pipeline runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from labelgate.models.backend import DecodedMasks, ImageFeatures
from labelgate.models.sam2.features import image_features
from labelgate.models.transformers_prompts import prompt_lists

LOGIT_CLAMP = 32.0  # DecodedMasks.low_res_logits are clamped as SAM2ImagePredictor returns them


def has_tracker(directory: Path) -> bool:
    """Whether the directory holds the tracker too: `facebook/sam3` (a `sam3_video` config) does; a
    `Sam3Model.save_pretrained` directory has the concept detector alone."""
    config = json.loads((Path(directory) / "config.json").read_text())
    return bool(config.get("tracker_config"))


def load_tracker(directory: Path, backbone: torch.nn.Module):
    """`Sam3TrackerModel` and `Sam3TrackerProcessor` from the directory, the model's ViT replaced by
    `backbone` (the detector's: the same weights, held once)."""
    from transformers import Sam3TrackerModel, Sam3TrackerProcessor

    tracker = Sam3TrackerModel.from_pretrained(directory)
    tracker.vision_encoder.backbone = backbone
    return tracker.to(next(backbone.parameters()).device).eval(), Sam3TrackerProcessor.from_pretrained(directory)


def tracker_levels(tracker, vit_output: torch.Tensor) -> list[torch.Tensor]:
    """(B, C, H, W) per level, finest first, the last the image embedding: what
    `Sam3TrackerModel.get_image_embeddings` returns, from the ViT's (B, tokens, width) output."""
    batch = vit_output.shape[0]
    height, width = tracker.prompt_encoder.image_embedding_size
    spatial = vit_output.view(batch, height, width, -1).permute(0, 3, 1, 2)
    maps, _ = tracker.vision_encoder.neck(spatial)
    maps = list(maps)
    maps[0] = tracker.mask_decoder.conv_s0(maps[0])
    maps[1] = tracker.mask_decoder.conv_s1(maps[1])
    maps = [level.flatten(2).permute(2, 0, 1) for level in maps]
    # As get_image_embeddings does: onto the neck's last level (which the zip below then drops when
    # the neck has a level more than the decoder takes, as facebook/sam3's does).
    maps[-1] = maps[-1] + tracker.no_memory_embedding
    return [level.permute(1, 2, 0).view(batch, -1, *size) for level, size in zip(maps, tracker.backbone_feature_sizes)]


def per_image(levels: list[torch.Tensor], index: int, orig_hw) -> ImageFeatures:
    return image_features(levels[-1][index].clone(), [level[index].clone() for level in levels[:-1]], orig_hw)


def prompt_inputs(processor, features: ImageFeatures, prompt) -> dict:
    """The processor's tensors for one prompt, in its coordinates, with the mask input if any."""
    inputs = processor(original_sizes=[list(features.orig_hw)], return_tensors="pt", **prompt_lists(prompt))
    inputs = {key: value for key, value in inputs.items() if key.startswith("input_")}
    if prompt.mask_input is not None:
        inputs["input_masks"] = torch.as_tensor(np.asarray(prompt.mask_input, np.float32))
    return inputs


def group_key(inputs: dict, multimask: bool) -> tuple:
    """Prompts that can share a forward pass: the same shapes (padding would add tokens, which change
    the attention and so the masks), the same multimask choice, and all with a mask input or none."""
    return tuple((key, tuple(value.shape)) for key, value in sorted(inputs.items())) + (multimask,)


def decode_group(tracker, processor, features: list[ImageFeatures], inputs: list[dict], multimask: bool) -> list[DecodedMasks]:
    device = features[0].image_embed.device
    embeddings = [torch.stack([f.high_res_feats[level] for f in features]) for level in range(len(features[0].high_res_feats))]
    embeddings.append(torch.stack([f.image_embed for f in features]))
    prompts = {key: torch.cat([each[key] for each in inputs]).to(device) for key in inputs[0]}
    output = tracker(image_embeddings=embeddings, multimask_output=multimask, **prompts)
    masks = processor.post_process_masks(output.pred_masks.float().cpu(), [list(f.orig_hw) for f in features])
    logits = torch.clamp(output.pred_masks, -LOGIT_CLAMP, LOGIT_CLAMP).float().cpu().numpy()
    scores = output.iou_scores.float().cpu().numpy()
    return [DecodedMasks(masks=masks[i].numpy(), scores=scores[i], low_res_logits=logits[i]) for i in range(len(features))]
