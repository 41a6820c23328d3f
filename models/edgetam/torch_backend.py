"""EdgeTAM in process through transformers (`EdgeTamModel` + `Sam2Processor`): the image encoder once
per image (`get_image_embeddings`), then the prompt encoder and mask decoder from cached features
(`EdgeTamModel(image_embeddings=...)`), with the processor's own coordinate scaling and mask
post-processing, so that masks are those of the transformers pipeline."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from labelgate.models.backend import DecodedMasks, DecodeItem, ImageFeatures, ModelInfo, PromptSegmentationBackend
from labelgate.models.sam2.features import image_features
from labelgate.models.transformers_prompts import prompt_lists
from labelgate.models.weights_hash import pretrained_version

log = logging.getLogger(__name__)


class EdgeTamTorchBackend(PromptSegmentationBackend):
    def __init__(self, model: torch.nn.Module, processor, name: str, version: str):
        self.model = model.eval()
        self.processor = processor
        self.device = next(model.parameters()).device
        self.info = ModelInfo(name=name, kind="edgetam", version=version, device=str(self.device))

    @classmethod
    def from_pretrained(cls, directory: Path | str, device: str = "cpu", name: str = "") -> "EdgeTamTorchBackend":
        """A transformers `save_pretrained` directory of EdgeTAM and its processor (e.g. a snapshot of
        `yonigozlan/EdgeTAM-hf`, or `write_edgetam_demo_model`)."""
        from transformers import EdgeTamModel, Sam2Processor

        directory = Path(directory)
        version = pretrained_version(directory)
        processor = Sam2Processor.from_pretrained(directory)
        model = EdgeTamModel.from_pretrained(directory).to(device)
        name = name or directory.resolve().name
        log.info("loaded EdgeTAM %s (%s, version %s) on %s", name, directory, version, device)
        return cls(model, processor, name=name, version=version)

    @property
    def image_size(self) -> int:
        return self.processor.target_size

    @torch.inference_mode()
    def encode(self, images: Sequence[np.ndarray]) -> list[ImageFeatures | Exception]:
        try:
            # A copy: decoded pixels are read-only (the cache shares them), which torch.from_numpy warns about.
            pixels = self.processor.image_processor([np.array(image) for image in images], input_data_format="channels_last",
                                                    return_tensors="pt")["pixel_values"].to(self.device)
            levels = self.model.get_image_embeddings(pixels)  # finest first; the last is the image embedding
        except Exception as error:  # one failure fails every image of this batch
            return [error] * len(images)
        return [
            image_features(levels[-1][index].clone(), [level[index].clone() for level in levels[:-1]], image.shape[:2])
            for index, image in enumerate(images)
        ]

    @torch.inference_mode()
    def decode(self, items: Sequence[DecodeItem]) -> list[DecodedMasks | Exception]:
        results: list[DecodedMasks | Exception | None] = [None] * len(items)
        # Images share a forward pass only with prompts of the same shape: padding would add tokens,
        # which change the attention and so the masks.
        groups: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
        for index, item in enumerate(items):
            try:
                inputs = self.processor(original_sizes=[list(item.features.orig_hw)], return_tensors="pt", **prompt_lists(item.prompt))
            except Exception as error:
                results[index] = error
                continue
            shape = tuple((key, tuple(value.shape)) for key, value in sorted(inputs.items()) if key.startswith("input_"))
            groups[(shape, item.prompt.multimask_output)].append((index, inputs))
        for (_, multimask), members in groups.items():
            try:
                for index, decoded in self._decode_group(items, members, multimask):
                    results[index] = decoded
            except Exception as error:
                for index, _ in members:
                    results[index] = error
        return results

    def _decode_group(self, items, members, multimask: bool):
        features = [items[index].features for index, _ in members]
        embeddings = [torch.stack([f.high_res_feats[level] for f in features]) for level in range(len(features[0].high_res_feats))]
        embeddings.append(torch.stack([f.image_embed for f in features]))
        prompts = {key: torch.cat([inputs[key] for _, inputs in members]).to(self.device)
                   for key in members[0][1] if key.startswith("input_")}
        output = self.model(image_embeddings=embeddings, multimask_output=multimask, **prompts)
        sizes = [list(f.orig_hw) for f in features]
        masks = self.processor.post_process_masks(output.pred_masks.float().cpu(), sizes)
        for position, (index, _) in enumerate(members):
            yield index, DecodedMasks(masks=masks[position].numpy(), scores=output.iou_scores[position].float().cpu().numpy())
