"""SAM 2 prompt preparation and mask post-processing, exactly as `SAM2ImagePredictor` does them.

Shared by every SAM 2 backend so that the torch path and remote paths give the same masks:
coordinates are scaled by the same `SAM2Transforms`, boxes become two corner points (labels 2, 3)
placed before the clicks, and low-res logits are upscaled bilinearly and thresholded at 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sam2.utils.transforms import SAM2Transforms

from labelgate.models.backend import SamPrompt

MASK_THRESHOLD = 0.0
BOX_CORNER_LABELS = (2, 3)


def make_transforms(image_size: int) -> SAM2Transforms:
    # Decoded pixels are read-only (the cache shares them). SAM2Transforms' ToTensor wraps them with
    # torch.from_numpy, which warns about that, and copies them at once (`.contiguous()` of a
    # transposed view), so nothing writes to them: the warning would only alarm server logs.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning,
                            module="torchvision.transforms.functional")
    # The predictor's defaults: threshold 0, no hole filling (which would need sam2._C).
    return SAM2Transforms(resolution=image_size, mask_threshold=MASK_THRESHOLD, max_hole_area=0.0, max_sprinkle_area=0.0)


def prompt_tokens(
    transforms: SAM2Transforms, prompt: SamPrompt, orig_hw: tuple[int, int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objects, tokens, 2) model-space coordinates and (objects, tokens) int labels."""
    coords = None
    labels = None
    if len(prompt.points):
        points = torch.as_tensor(prompt.points, dtype=torch.float, device=device)
        coords = transforms.transform_coords(points, normalize=True, orig_hw=orig_hw)[None, ...]
        labels = torch.as_tensor(prompt.labels, dtype=torch.int, device=device)[None, ...]
    if len(prompt.boxes):
        boxes = torch.as_tensor(prompt.boxes, dtype=torch.float, device=device)
        box_coords = transforms.transform_boxes(boxes, normalize=True, orig_hw=orig_hw)
        box_labels = torch.tensor([BOX_CORNER_LABELS], dtype=torch.int, device=device).repeat(box_coords.size(0), 1)
        if coords is None:
            return box_coords, box_labels
        return torch.cat([box_coords, coords], dim=1), torch.cat([box_labels, labels], dim=1)
    if coords is None:
        raise ValueError("a SAM 2 prompt needs at least one point or box")
    return coords, labels


def upscale_masks(transforms: SAM2Transforms, low_res_logits: torch.Tensor, orig_hw: tuple[int, int]) -> np.ndarray:
    """(objects, K, 256, 256) logits -> (objects, K, H, W) bool masks at the original size."""
    masks = transforms.postprocess_masks(low_res_logits, orig_hw)
    return (masks > MASK_THRESHOLD).cpu().numpy()
