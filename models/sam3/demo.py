"""A small random-weight SAM 3 as a transformers directory laid out as the official `facebook/sam3` is (a
`sam3_video` config and `detector_model.*`, `tracker_neck.*`, `tracker_model.*` weights), for offline
demos and tests: the real architecture (ViT + FPN, CLIP text encoder, geometry encoder, DETR encoder and
decoder with the presence head, mask decoder; the tracker's own FPN neck, SAM 2-style prompt encoder
and mask decoder, and its video memory), shrunk to the sizes of transformers' own
`tests/models/sam3/test_modeling_sam3.py`. `Sam3Model`, `Sam3TrackerModel` and `Sam3VideoModel` each
load it through exactly the code that loads the official weights. Its masks are meaningless."""

from __future__ import annotations

import json
from pathlib import Path

DEMO_IMAGE_SIZE = 224  # 16 x 16 patches of 14 px; the official model: 1008 (72 x 72)
DEMO_WIDTH = 32  # every hidden size; the official model: ViT 1024, the rest 256
DEMO_NUM_QUERIES = 5  # the official model: 200
DEMO_WORDS = ("cat", "dog", "person", "car", "tree", "red", "small", "visual")
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"  # CLIP's; ids 0 and 1 in the demo vocab


def demo_config():
    from transformers.models.sam3.configuration_sam3 import (
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3MaskDecoderConfig,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    small = {"hidden_size": DEMO_WIDTH, "num_attention_heads": 4, "intermediate_size": 2 * DEMO_WIDTH}
    backbone = Sam3ViTConfig(
        **small,
        num_hidden_layers=2,
        image_size=DEMO_IMAGE_SIZE,
        patch_size=14,
        window_size=8,
        global_attn_indexes=[1],  # one windowed and one global block, as the official model alternates them
    )
    return Sam3Config(
        # The official four FPN scales; the model drops the last, so three reach the mask decoder.
        vision_config=Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=DEMO_WIDTH, scale_factors=[4.0, 2.0, 1.0, 0.5]),
        text_config={
            **small,
            "vocab_size": 1000,
            "projection_dim": DEMO_WIDTH,
            "num_hidden_layers": 1,
            "max_position_embeddings": 32,  # Sam3Processor pads every phrase to 32 tokens
            "hidden_act": "gelu",
            "bos_token_id": 0,  # the demo tokenizer's ids of START_TOKEN and END_TOKEN (also its padding)
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        geometry_encoder_config=Sam3GeometryEncoderConfig(**small, num_layers=1),
        detr_encoder_config=Sam3DETREncoderConfig(**small, num_layers=1),
        detr_decoder_config=Sam3DETRDecoderConfig(**small, num_layers=1, num_queries=DEMO_NUM_QUERIES),
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=DEMO_WIDTH, num_attention_heads=4, num_upsampling_stages=3),
    )


def demo_video_config():
    """The detector (`demo_config`) with a tracker of the same widths on the same ViT, as `facebook/sam3`
    pairs them."""
    from transformers import Sam3VideoConfig
    from transformers.models.sam3_tracker_video.configuration_sam3_tracker_video import Sam3TrackerVideoConfig

    detector = demo_config()
    grid = DEMO_IMAGE_SIZE // detector.vision_config.backbone_config.patch_size
    tracker = Sam3TrackerVideoConfig(
        vision_config=detector.vision_config.to_dict(),
        prompt_encoder_config={"hidden_size": DEMO_WIDTH, "image_size": DEMO_IMAGE_SIZE, "patch_size": 14},
        mask_decoder_config={"hidden_size": DEMO_WIDTH, "mlp_dim": 2 * DEMO_WIDTH, "num_attention_heads": 4,
                             "iou_head_hidden_dim": DEMO_WIDTH},
        memory_attention_hidden_size=DEMO_WIDTH,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=2 * DEMO_WIDTH,
        memory_attention_rope_feat_sizes=[grid, grid],
        memory_encoder_hidden_size=DEMO_WIDTH,
        memory_encoder_output_channels=16,
        mask_downsampler_embed_dim=DEMO_WIDTH,
        memory_fuser_embed_dim=DEMO_WIDTH,
        memory_fuser_intermediate_dim=2 * DEMO_WIDTH,
        image_size=DEMO_IMAGE_SIZE,
    )
    return Sam3VideoConfig(detector_config=detector.to_dict(), tracker_config=tracker.to_dict())


def _bpe_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP byte-level BPE that spells any text: every byte alone and word-final (`</w>`), plus
    left-to-right merges that make each of `DEMO_WORDS` one token."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    letters = list(bytes_to_unicode().values())
    tokens = [START_TOKEN, END_TOKEN] + letters + [letter + "</w>" for letter in letters]
    merges = []
    for word in DEMO_WORDS:
        prefix = word[0]
        for index, letter in enumerate(word[1:], start=1):
            last = index == len(word) - 1
            piece = letter + "</w>" if last else letter
            merges.append((prefix, piece))
            prefix = prefix + piece
            tokens.append(prefix)
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab, list(dict.fromkeys(merges))


def save_random_sam3(config, directory: Path) -> None:
    """A random-weight `Sam3VideoModel` of `config` (a `Sam3VideoConfig`) written as `facebook/sam3` is:
    its config.json and one model.safetensors (no processor)."""
    from safetensors.torch import save_file
    from transformers import Sam3VideoModel

    model = Sam3VideoModel(config)
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(directory)
    # The module names are the official checkpoint's keys; Sam3VideoModel.save_pretrained (transformers
    # 5.24) would write the tracker's as `tracker_model.tracker_model.*`, which no model loads back.
    weights = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    save_file(weights, str(directory / "model.safetensors"), metadata={"format": "pt"})


def write_sam3_demo_model(directory: Path, seed: int = 0) -> Path:
    """Model + processor (`Sam3Processor`: image processor at the demo size and a CLIP tokenizer built
    offline) in `directory`."""
    import torch
    from transformers import CLIPTokenizer, Sam3ImageProcessor, Sam3Processor

    torch.manual_seed(seed)
    directory = Path(directory)
    save_random_sam3(demo_video_config(), directory)
    vocab, merges = _bpe_vocab_and_merges()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    image_processor = Sam3ImageProcessor(size={"height": DEMO_IMAGE_SIZE, "width": DEMO_IMAGE_SIZE})
    Sam3Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    (directory / "labelgate-demo.json").write_text(json.dumps({"random_weights": True, "seed": seed}))
    return directory
