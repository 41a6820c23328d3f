"""EdgeTAM's transformers config with the RepViT backbone it is trained with.

transformers 5.24's default `EdgeTamConfig()` misspells the backbone's `architecture` in its
defaults (`archirecture`), so it silently builds a timm resnet50: the backbone is always given here.
"""

from __future__ import annotations

BACKBONE = "repvit_m1"
BACKBONE_OUTPUTS = [0, 1, 2, 3]  # strides 4, 8, 16, 32


def backbone_config(**model_args):
    """The timm RepViT-M1 feature extractor EdgeTAM uses; `model_args` override timm's (embed_dim, depth)."""
    from transformers import TimmWrapperConfig

    args = {"in_chans": 3, "features_only": True, "out_indices": BACKBONE_OUTPUTS, **model_args}
    return TimmWrapperConfig(architecture=BACKBONE, model_args=args)


def edgetam_config(image_size: int = 1024, backbone_channels=(48, 96, 192, 384), width: int = 256, backbone_args=None,
                   mask_decoder_args=None):
    """An `EdgeTamConfig` of the real architecture at `image_size` (defaults: the official model)."""
    from transformers import EdgeTamConfig, EdgeTamMaskDecoderConfig, EdgeTamPromptEncoderConfig, EdgeTamVisionConfig

    sizes = [[image_size // stride] * 2 for stride in (4, 8, 16)]
    vision = EdgeTamVisionConfig(
        backbone_config=backbone_config(**(backbone_args or {})),
        backbone_channel_list=list(backbone_channels)[::-1],
        backbone_feature_sizes=sizes,
        fpn_hidden_size=width,
    )
    prompt = EdgeTamPromptEncoderConfig(hidden_size=width, image_size=image_size)
    decoder = EdgeTamMaskDecoderConfig(hidden_size=width, **(mask_decoder_args or {}))
    return EdgeTamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
