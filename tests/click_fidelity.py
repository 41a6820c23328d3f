"""What the click-fidelity tests of the transformers SAM-family backends (EdgeTAM, SAM 3's tracker)
share: the prompts, the test images, and the transformers pipeline they are compared with
(processor -> model -> processor.post_process_masks), with no labelgate code in it."""

from __future__ import annotations

import numpy as np
import torch

from labelgate.models.backend import DecodeItem, SamPrompt

# name -> (points [(x, y, label)], boxes), in pixels of a 90 x 120 image (scaled to the others)
PROMPTS = {
    "one point": ([(40.0, 30.0, 1)], []),
    "points with a negative": ([(40.0, 30.0, 1), (80.0, 60.0, 0), (20.0, 70.0, 1)], []),
    "a box": ([], [(10.0, 10.0, 70.0, 60.0)]),
    "box and point": ([(40.0, 30.0, 1)], [(10.0, 10.0, 70.0, 60.0)]),
    "two boxes": ([], [(10.0, 10.0, 70.0, 60.0), (50.0, 20.0, 110.0, 80.0)]),
}


def transformers_clicks(processor, model):
    """run(image, points, boxes, multimask, mask_logits=None) -> (masks, iou scores, low-res logits)
    of the first image, through the checkpoint's own transformers pipeline."""

    @torch.inference_mode()
    def run(image, points, boxes, multimask, mask_logits=None):
        prompts = {}
        if points:
            copies = max(1, len(boxes))  # the model pairs point groups with boxes one to one
            prompts["input_points"] = [[[[x, y] for x, y, _ in points]] * copies]
            prompts["input_labels"] = [[[label for _, _, label in points]] * copies]
        if boxes:
            prompts["input_boxes"] = [[list(box) for box in boxes]]
        inputs = processor(images=image, return_tensors="pt", **prompts)
        if mask_logits is not None:
            inputs["input_masks"] = torch.as_tensor(mask_logits)
        output = model(**inputs, multimask_output=multimask)
        masks = processor.post_process_masks(output.pred_masks, inputs["original_sizes"])
        return masks[0].numpy(), output.iou_scores[0].numpy(), output.pred_masks[0].numpy()

    return run


def test_image(size) -> np.ndarray:
    image = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    image.flags.writeable = False  # as the server's decoded pixels are
    return image


test_image.__test__ = False  # a helper, not a test


def scaled(name, size):
    """The prompt `name` in pixels of an image of `size`: (points, boxes)."""
    sy, sx = size[0] / 90, size[1] / 120
    points = [(x * sx, y * sy, label) for x, y, label in PROMPTS[name][0]]
    boxes = [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in PROMPTS[name][1]]
    return points, boxes


def sam_prompt(points, boxes, multimask, mask_input=None) -> SamPrompt:
    return SamPrompt(
        points=np.array([(x, y) for x, y, _ in points], np.float32).reshape(-1, 2),
        labels=np.array([label for _, _, label in points], np.int32),
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        multimask_output=multimask,
        mask_input=mask_input,
    )


def decode_one(backend, features, prompt):
    [decoded] = backend.decode([DecodeItem(features, prompt)])
    assert not isinstance(decoded, Exception), decoded
    return decoded
