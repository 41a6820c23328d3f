"""Grounding DINO pre- and post-processing, shared by every backend (torch in-process, Triton).

Everything outside the network itself is the checkpoint's own transformers processor: resize and
normalisation of the image, tokenisation of the caption, and the grounded post-processing
(scores, boxes in pixels, text labels). The only pieces computed here are the two text tensors the
model derives from the token ids (the phrase attention mask and position ids), with transformers'
own function: the exported graph takes them as inputs, because they involve ops (cummax) that do
not export.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from labelgate.core.errors import InvalidInput
from labelgate.models.backend import Detection, DetectItem


def normalize_caption(text: str) -> str:
    """Lower case, single spaces, ending with "." (what the original Grounding DINO demo feeds the
    model: `caption.lower().strip()`, plus a "." if missing). Idempotent."""
    caption = " ".join(str(text).split()).lower()
    if not caption or caption.strip(" .") == "":
        raise ValueError("the caption is empty")
    if not caption.endswith("."):
        caption += "."
    return caption


def check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"an image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image must be H x W x 3 RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"an image must be uint8, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"an image must not be empty, got shape {image.shape}")


def check_threshold(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def checked_caption(item: DetectItem) -> str:
    """The item's normalised caption, after checking its image and thresholds (ValueError/TypeError)."""
    caption = normalize_caption(item.caption)
    check_image(item.image)
    check_threshold("box_threshold", item.box_threshold)
    check_threshold("text_threshold", item.text_threshold)
    return caption


def model_inputs(processor, images: list[np.ndarray], caption: str, image_size: tuple[int, int] | None = None):
    """The processor's tensors for images that all get `caption`. With `image_size` (height, width)
    every image is resized to exactly that size (what a fixed-size exported graph takes);
    otherwise the processor's own resize rule applies (aspect-preserving for the official ones),
    with no side rounded down to zero (see `nonzero_resize`)."""
    image_size = image_size or _nonzero_resize_for_all(processor, images)
    kwargs = {"size": {"height": image_size[0], "width": image_size[1]}} if image_size else {}
    return processor(
        images=images, text=[caption] * len(images), return_tensors="pt", input_data_format="channels_last", **kwargs
    )


def nonzero_resize(processor, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The size (height, width) the processor resizes an image of `shape` to, with a side it would
    round down to 0 pixels raised to 1; None where the processor's own rule gives no empty side.

    The shortest/longest-edge rule of the official processors shrinks the short side to
    round(longest_edge * short / long), which is 0 for an image at least 2 x longest_edge times
    longer than wide (e.g. 1 x 2666 pixels at 800/1333), and the resize then fails."""
    from transformers.image_transforms import get_size_with_aspect_ratio

    size = processor.image_processor.size
    shortest, longest = size.get("shortest_edge"), size.get("longest_edge")
    if not (shortest and longest):
        return None
    height, width = get_size_with_aspect_ratio(tuple(shape), shortest, longest)
    if height >= 1 and width >= 1:
        return None
    return max(height, 1), max(width, 1)


def _nonzero_resize_for_all(processor, images: list[np.ndarray]) -> tuple[int, int] | None:
    """One explicit size for the whole call where some image needs `nonzero_resize`, else None."""
    shapes = {tuple(image.shape[:2]) for image in images}
    sizes = {nonzero_resize(processor, shape) for shape in shapes}
    if sizes == {None}:
        return None
    if len(shapes) > 1:
        raise ValueError(f"an image of extreme aspect ratio must be processed apart from images of other shapes: {shapes}")
    return sizes.pop()


def check_token_count(input_ids: torch.Tensor, max_text_len: int) -> None:
    """Grounding DINO reads at most `max_text_len` tokens (256 for the official models); transformers'
    model fails on a longer caption, so it is refused as the caller's to shorten."""
    if input_ids.shape[-1] > max_text_len:
        raise InvalidInput(
            f"the text prompt is {input_ids.shape[-1]} tokens long; this detector reads at most {max_text_len}: "
            "shorten it, or split its phrases over several calls"
        )


def text_structure(input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(text_self_attention_masks (B, L, L) bool, position_ids (B, L) int64), as
    `GroundingDinoModel.forward` derives them from the token ids."""
    from transformers.models.grounding_dino import modeling_grounding_dino as gd

    special_tokens = torch.tensor(gd.SPECIAL_TOKENS, device=input_ids.device)
    return gd.generate_masks_with_special_tokens_and_transfer_map(input_ids, special_tokens)


def detections(processor, logits: torch.Tensor, pred_boxes: torch.Tensor, input_ids: torch.Tensor, item: DetectItem) -> list[Detection]:
    """One image's detections from its raw outputs (logits (1, Q, T), pred_boxes (1, Q, 4)) and
    token ids (1, L), through the processor's grounded post-processing."""
    outputs = SimpleNamespace(logits=logits, pred_boxes=pred_boxes)
    height, width = item.image.shape[:2]
    result = processor.post_process_grounded_object_detection(
        outputs,
        input_ids,
        threshold=item.box_threshold,
        text_threshold=item.text_threshold,
        target_sizes=[(height, width)],
    )[0]
    boxes = result["boxes"].float().cpu().tolist()
    scores = result["scores"].float().cpu().tolist()
    labels = result["text_labels"]
    return [
        Detection(box=tuple(float(v) for v in box), score=float(score), label=str(label))
        for box, score, label in zip(boxes, scores, labels)
    ]
