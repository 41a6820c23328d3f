"""A small random-weight EdgeTAM as a transformers `save_pretrained` directory, for offline demos and
tests: the real architecture (timm RepViT backbone, FPN neck, SAM 2 prompt encoder and mask
decoder), shrunk, loading through exactly the code that loads the official weights. Its masks
are meaningless."""

from __future__ import annotations

import json
from pathlib import Path

DEMO_IMAGE_SIZE = 256
DEMO_BACKBONE_CHANNELS = (16, 32, 64, 128)  # RepViT-M1: (48, 96, 192, 384)
DEMO_WIDTH = 64  # the official model: 256


def demo_config():
    from labelgate.models.edgetam.config import edgetam_config

    return edgetam_config(
        image_size=DEMO_IMAGE_SIZE,
        backbone_channels=DEMO_BACKBONE_CHANNELS,
        width=DEMO_WIDTH,
        backbone_args={"embed_dim": list(DEMO_BACKBONE_CHANNELS), "depth": [1, 1, 1, 1]},
        mask_decoder_args={"mlp_dim": 128, "iou_head_hidden_dim": DEMO_WIDTH, "num_attention_heads": 4},
    )


def write_edgetam_demo_model(directory: Path, seed: int = 0) -> Path:
    """Model + processor (`Sam2Processor`, as transformers pairs with EdgeTAM) in `directory`."""
    import torch
    from transformers import EdgeTamModel, Sam2ImageProcessor, Sam2Processor

    torch.manual_seed(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    EdgeTamModel(demo_config()).save_pretrained(directory)
    size = {"height": DEMO_IMAGE_SIZE, "width": DEMO_IMAGE_SIZE}
    Sam2Processor(image_processor=Sam2ImageProcessor(size=size)).save_pretrained(directory)
    (directory / "labelgate-demo.json").write_text(json.dumps({"random_weights": True, "seed": seed}))
    return directory
