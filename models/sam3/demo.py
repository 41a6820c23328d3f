"""A small random-weight SAM 3 (concept segmentation) as a transformers `save_pretrained` directory, for
offline demos and tests: the real architecture (ViT + FPN, CLIP text encoder, geometry encoder, DETR
encoder and decoder with the presence head, mask decoder), shrunk to the sizes of transformers' own
`tests/models/sam3/test_modeling_sam3.py`, loading through exactly the code that loads the official
`facebook/sam3` weights. Its masks are meaningless."""

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


def write_sam3_demo_model(directory: Path, seed: int = 0) -> Path:
    """Model + processor (`Sam3Processor`: image processor at the demo size and a CLIP tokenizer built
    offline) in `directory`."""
    import torch
    from transformers import CLIPTokenizer, Sam3ImageProcessor, Sam3Model, Sam3Processor

    torch.manual_seed(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    Sam3Model(demo_config()).save_pretrained(directory)
    vocab, merges = _bpe_vocab_and_merges()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    image_processor = Sam3ImageProcessor(size={"height": DEMO_IMAGE_SIZE, "width": DEMO_IMAGE_SIZE})
    Sam3Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    (directory / "labelgate-demo.json").write_text(json.dumps({"random_weights": True, "seed": seed}))
    return directory
