"""SAM 2 in-process with PyTorch: the image encoder once per image, then the prompt encoder and
mask decoder straight from cached features (the split `SAM2ImagePredictor` makes between
`set_image` and `predict`, without sharing a predictor object between requests)."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from labelgate.models.backend import DecodedMasks, DecodeItem, ImageFeatures, ModelInfo, PromptSegmentationBackend
from labelgate.models.sam2.features import image_feature_levels, image_features
from labelgate.models.sam2.prompts import make_transforms, prompt_tokens, upscale_masks
from labelgate.models.weights_hash import weights_version

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LOGIT_CLAMP = 32.0  # SAM2ImagePredictor._predict clamps the low-res logits it returns to [-32, 32]


def load_sam2(config: str, checkpoint: Path | None, device: str, overrides: Sequence[str] = ()) -> torch.nn.Module:
    """Build SAM 2 from a bundled config name (e.g. `configs/sam2.1/sam2.1_hiera_t.yaml`) and an
    official `{'model': state_dict}` checkpoint, exactly as `sam2.build_sam.build_sam2` does."""
    from sam2.build_sam import build_sam2

    return build_sam2(config, str(checkpoint) if checkpoint else None, device=device, hydra_overrides_extra=list(overrides))


class Sam2TorchBackend(PromptSegmentationBackend):
    def __init__(self, model: torch.nn.Module, name: str, version: str, dtype: str = "fp32"):
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = DTYPES[dtype]
        if self.dtype != torch.float32 and self.device.type != "cuda":
            raise ValueError(f"--dtype {dtype} needs a CUDA device; this model is on {self.device}")
        self.transforms = make_transforms(model.image_size)
        self.info = ModelInfo(name=name, kind="sam2", version=version, device=str(self.device))

    @classmethod
    def from_checkpoint(
        cls, config: str, checkpoint: Path | None, device: str, overrides: Sequence[str] = (), name: str = "", dtype: str = "fp32"
    ) -> "Sam2TorchBackend":
        model = load_sam2(config, checkpoint, device, overrides)
        name = name or Path(config).stem
        version = weights_version([checkpoint] if checkpoint else [], extra=list(overrides) + [config])
        log.info("loaded SAM 2 %s (%s, image_size %d) on %s", name, checkpoint, model.image_size, device)
        return cls(model, name=name, version=version, dtype=dtype)

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def _autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def encode(self, images: Sequence[np.ndarray]) -> list[ImageFeatures | Exception]:
        try:
            batch = torch.stack([self.transforms(image) for image in images]).to(self.device)
            with self._autocast():
                levels = image_feature_levels(self.model, batch)
        except Exception as error:  # one failure fails every image of this batch
            return [error] * len(images)
        results = []
        for index, image in enumerate(images):
            per_image = [level[index].clone() for level in levels]
            results.append(image_features(per_image[-1], per_image[:-1], image.shape[:2]))
        return results

    @torch.inference_mode()
    def decode(self, items: Sequence[DecodeItem]) -> list[DecodedMasks | Exception]:
        results: list[DecodedMasks | Exception | None] = [None] * len(items)
        # Only prompts with the same token count can share a forward pass: padding would change
        # the attention and so the masks. (How many requests come at once is the batcher's
        # business: on a CPU the `sam2` kind sends them one at a time.)
        groups: dict[tuple[int, bool], list[tuple[int, torch.Tensor, torch.Tensor]]] = defaultdict(list)
        for index, item in enumerate(items):
            try:
                coords, labels = prompt_tokens(self.transforms, item.prompt, item.features.orig_hw, self.device)
            except Exception as error:
                results[index] = error
                continue
            # A mask input changes the dense embedding, so such prompts go together.
            key = (coords.shape[1], item.prompt.multimask_output, item.prompt.mask_input is not None)
            groups[key].append((index, coords, labels))
        for (_, multimask, _), members in groups.items():
            try:
                for index, decoded in self._decode_group(items, members, multimask):
                    results[index] = decoded
            except Exception as error:
                for index, _, _ in members:
                    results[index] = error
        return results

    def _decode_group(self, items, members, multimask: bool):
        coords = torch.cat([c for _, c, _ in members])
        labels = torch.cat([lab for _, _, lab in members])
        if len(members) == 1:
            # One image: broadcast its features over the objects, as the predictor does.
            features = items[members[0][0]].features
            image_embed = features.image_embed.unsqueeze(0)
            high_res = [f.unsqueeze(0) for f in features.high_res_feats]
            repeat_image = coords.shape[0] > 1
        else:
            counts = [c.shape[0] for _, c, _ in members]
            feats = [items[index].features for index, _, _ in members]
            image_embed = torch.cat([f.image_embed.unsqueeze(0).expand(n, -1, -1, -1) for f, n in zip(feats, counts)])
            high_res = [
                torch.cat([f.high_res_feats[level].unsqueeze(0).expand(n, -1, -1, -1) for f, n in zip(feats, counts)])
                for level in range(len(feats[0].high_res_feats))
            ]
            repeat_image = False
        mask_input = None
        if items[members[0][0]].prompt.mask_input is not None:
            mask_input = torch.cat([torch.as_tensor(items[index].prompt.mask_input, dtype=torch.float, device=self.device)
                                    for index, _, _ in members])
        with self._autocast():
            sparse, dense = self.model.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_input)
            low_res, iou, _, _ = self.model.sam_mask_decoder(
                image_embeddings=image_embed,
                image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=repeat_image,
                high_res_features=high_res,
            )
        # As the predictor returns them for a later mask_input (the masks use the unclamped logits).
        logits = torch.clamp(low_res, -LOGIT_CLAMP, LOGIT_CLAMP).float().cpu().numpy()
        start = 0
        for index, c, _ in members:
            stop = start + c.shape[0]
            orig_hw = items[index].features.orig_hw
            masks = upscale_masks(self.transforms, low_res[start:stop].float(), orig_hw)
            yield index, DecodedMasks(masks=masks, scores=iou[start:stop].float().cpu().numpy(), low_res_logits=logits[start:stop])
            start = stop
