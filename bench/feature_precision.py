"""How much do masks change when the shared cache stores SAM 2 features in float16?

For each tensor (image_embed, high_res_0, high_res_1) alone and for all of them, round-trips the
features through `feature_codec` with that tensor in fp16, decodes the same prompts from the
fp32 and the round-tripped features, and prints the lowest mask IoU seen. The codec's
FP16_TENSORS may only hold tensors whose minimum stays >= 0.999.

    .venv/bin/python bench/feature_precision.py            # demo model + hiera-tiny (random) at 1024 px

Trained weights behave like the random ones here only roughly; rerun with `--checkpoint` on the
real ones where they are available.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from labelgate.models.backend import DecodeItem, SamPrompt
from labelgate.server.feature_codec import decode_features, encode_features, tensor_names

IOU_BAR = 0.999


def sample_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth shapes on a gradient, of a few sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        height, width = [(480, 640), (600, 400), (512, 512)][index % 3]
        ramp = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
        image = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
        for _ in range(8):
            y0, x0 = rng.integers(0, height - 40), rng.integers(0, width - 40)
            image[y0:y0 + rng.integers(20, height // 2), x0:x0 + rng.integers(20, width // 2)] = rng.integers(0, 255, 3)
        images.append(image)
    return images


def sample_prompts(height: int, width: int, seed: int = 0) -> list[SamPrompt]:
    rng = np.random.default_rng(seed)
    prompts = []
    for _ in range(6):
        points = (rng.random((3, 2)) * (width, height)).astype(np.float32)
        prompts.append(SamPrompt(points[:1], np.array([1], np.int32), np.zeros((0, 4), np.float32), True))
        prompts.append(SamPrompt(points, np.array([1, 0, 1], np.int32), np.zeros((0, 4), np.float32), False))
        x0, y0 = rng.random(2) * (width / 2, height / 2)
        box = np.array([[x0, y0, x0 + width / 3, y0 + height / 3]], np.float32)
        prompts.append(SamPrompt(np.zeros((0, 2), np.float32), np.zeros((0,), np.int32), box, True))
    return prompts


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def min_mask_iou(backend, images: list[np.ndarray], fp16: frozenset[str]) -> float:
    """The lowest IoU between a mask from fp32 features and the same mask after the codec."""
    lowest = 1.0
    for features in backend.encode(images):
        restored = decode_features(encode_features(features, fp16), "torch", backend.info.device)
        prompts = sample_prompts(*features.orig_hw)
        exact = backend.decode([DecodeItem(features, p) for p in prompts])
        coded = backend.decode([DecodeItem(restored, p) for p in prompts])
        for a, b in zip(exact, coded):
            for mask_a, mask_b in zip(a.masks.reshape(-1, *a.masks.shape[-2:]), b.masks.reshape(-1, *b.masks.shape[-2:])):
                lowest = min(lowest, iou(mask_a, mask_b))
    return lowest


def policies(num_high_res: int) -> dict[str, frozenset[str]]:
    names = tensor_names(num_high_res)
    return {**{name: frozenset({name}) for name in names}, "all": frozenset(names)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--checkpoint", default=None, help="SAM 2 checkpoint for --config (default: random weights)")
    parser.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_t.yaml")
    args = parser.parse_args()

    import torch

    from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend

    torch.manual_seed(0)
    models = {
        "demo (256 px, random)": Sam2TorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, None, "cpu", SAM2_DEMO_OVERRIDES),
        f"{args.config} (1024 px, {args.checkpoint or 'random'})": Sam2TorchBackend.from_checkpoint(
            args.config, args.checkpoint, "cpu"
        ),
    }
    images = sample_images(args.images)
    failed = False
    for label, backend in models.items():
        for policy, fp16 in policies(2).items():
            lowest = min_mask_iou(backend, images, fp16)
            failed |= policy == "all" and lowest < IOU_BAR
            print(f"{label:50s} fp16 {policy:12s} min mask IoU {lowest:.6f}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
