"""The three networks labelgate exports, as torch modules with fixed tensor names.

The names are the contract between the ONNX files, the TensorRT engines, the Triton model
configs and the Triton client backends; every one of them reads them from here. Batch is axis 0
of every tensor.

- `sam2_image_encoder`: image (B, 3, S, S) normalised -> the predictor's features, both high-res
  maps and the image embedding with `no_mem_embed` added (`labelgate.models.sam2.features`).
- `sam2_mask_decoder`: one prompt per batch row, as the model-space tokens `prompt_tokens` makes
  (boxes as two corner points first, then clicks); the prompt encoder appends SAM's one padding
  point itself, exactly as in the torch path. The point axis is dynamic: padding to a fixed count
  would add tokens to the attention and change the masks. Outputs both the multimask (3) and the
  single-mask (1, chosen by stability as `MaskDecoder.forward` does) low-res logits and scores;
  upscaling and thresholding stay outside.
- `grounding_dino`: fixed image size, tokenisation outside; the phrase attention mask and
  position ids come in as inputs (`processing.text_structure`) because they do not export.
"""

from __future__ import annotations

from unittest import mock

import torch

SAM2_IMAGE_ENCODER = "sam2_image_encoder"
SAM2_MASK_DECODER = "sam2_mask_decoder"
GROUNDING_DINO = "grounding_dino"


def _batch_axes(names, extra: dict[str, dict[int, str]] | None = None) -> dict[str, dict[int, str]]:
    axes = {name: {0: "batch"} for name in names}
    for name, more in (extra or {}).items():
        axes[name] = {**axes[name], **more}
    return axes


class Sam2ImageEncoderGraph(torch.nn.Module):
    name = SAM2_IMAGE_ENCODER
    input_names = ("image",)
    output_names = ("image_embed", "high_res_feats_0", "high_res_feats_1")

    def __init__(self, sam2_model: torch.nn.Module):
        super().__init__()
        self.model = sam2_model

    def forward(self, image: torch.Tensor):
        from labelgate.models.sam2.features import image_feature_levels

        levels = image_feature_levels(self.model, image)
        return levels[-1], levels[0], levels[1]

    @classmethod
    def dynamic_axes(cls):
        return _batch_axes(cls.input_names + cls.output_names)


class Sam2MaskDecoderGraph(torch.nn.Module):
    name = SAM2_MASK_DECODER
    input_names = ("image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels")
    output_names = ("multimask_logits", "multimask_scores", "singlemask_logits", "singlemask_scores")

    def __init__(self, sam2_model: torch.nn.Module):
        super().__init__()
        self.model = sam2_model

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels):
        prompt_encoder, decoder = self.model.sam_prompt_encoder, self.model.sam_mask_decoder
        # boxes=None: the prompt encoder pads one "not a point", as for the predictor's calls.
        sparse, dense = prompt_encoder(points=(point_coords, point_labels), boxes=None, masks=None)
        logits, scores, _, _ = decoder.predict_masks(
            image_embeddings=image_embed,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        # The selection `MaskDecoder.forward` makes for multimask_output True and False (eval mode).
        if decoder.dynamic_multimask_via_stability:
            single_logits, single_scores = decoder._dynamic_multimask_via_stability(logits, scores)
        else:
            single_logits, single_scores = logits[:, 0:1], scores[:, 0:1]
        return logits[:, 1:], scores[:, 1:], single_logits, single_scores

    @classmethod
    def dynamic_axes(cls):
        points = {1: "points"}
        return _batch_axes(cls.input_names + cls.output_names, {"point_coords": points, "point_labels": points})


class GroundingDinoGraph(torch.nn.Module):
    name = GROUNDING_DINO
    input_names = (
        "pixel_values", "input_ids", "token_type_ids", "attention_mask", "text_self_attention_masks", "position_ids",
    )
    output_names = ("logits", "pred_boxes")

    def __init__(self, detector: torch.nn.Module):
        super().__init__()
        self.model = detector

    def forward(self, pixel_values, input_ids, token_type_ids, attention_mask, text_self_attention_masks, position_ids):
        from transformers.models.grounding_dino import modeling_grounding_dino as gd

        def given(input_ids, special_tokens):
            return text_self_attention_masks, position_ids

        with mock.patch.object(gd, "generate_masks_with_special_tokens_and_transfer_map", given):
            outputs = self.model(
                pixel_values=pixel_values,
                input_ids=input_ids,
                token_type_ids=token_type_ids,
                attention_mask=attention_mask,
                return_dict=True,
            )
        return outputs.logits, outputs.pred_boxes

    @classmethod
    def dynamic_axes(cls):
        text = {1: "tokens"}
        return _batch_axes(
            cls.input_names + cls.output_names,
            {
                "input_ids": text,
                "token_type_ids": text,
                "attention_mask": text,
                "position_ids": text,
                "text_self_attention_masks": {1: "tokens", 2: "tokens"},
            },
        )
