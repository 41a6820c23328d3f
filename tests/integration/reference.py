"""The upstream reference code the service must agree with, loaded from the same demo weights."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
from labelgate.models.demo import demo_paths


def sam2_predictor(demo_weights: Path, checkpoint: Path | None = None, config: str = SAM2_DEMO_CONFIG):
    """`SAM2ImagePredictor` over the demo checkpoint (or another shrunk one built from `config`),
    built by sam2's own `build_sam2`."""
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    checkpoint = checkpoint or demo_paths(demo_weights)[0]
    model = build_sam2(config, str(checkpoint), device="cpu", hydra_overrides_extra=list(SAM2_DEMO_OVERRIDES))
    predictor = SAM2ImagePredictor(model)
    # The predictor hard-codes the feature sizes of 1024 px models; the demo model is 256 px.
    side = model.image_size // 4
    predictor._bb_feat_sizes = [(side, side), (side // 2, side // 2), (side // 4, side // 4)]
    return predictor


def grounding_dino_reference(demo_weights: Path):
    """(processor, model) loaded by transformers from the demo save_pretrained directory."""
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    _, directory = demo_paths(demo_weights)
    return AutoProcessor.from_pretrained(directory), GroundingDinoForObjectDetection.from_pretrained(directory).eval()


def reference_detect(processor, model, image: np.ndarray, caption: str, box_threshold: float, text_threshold: float):
    import torch

    inputs = processor(images=image, text=caption, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs)
    return processor.post_process_grounded_object_detection(
        outputs, inputs.input_ids, threshold=box_threshold, text_threshold=text_threshold,
        target_sizes=[image.shape[:2]],
    )[0]


def random_image(seed: int, height: int, width: int) -> np.ndarray:
    """Smooth random shapes rather than noise, so masks have structure."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8) + rng.integers(0, 255, 3, dtype=np.uint8)
    for _ in range(6):
        x0, y0 = rng.integers(0, width - 10), rng.integers(0, height - 10)
        x1, y1 = x0 + rng.integers(10, width // 2), y0 + rng.integers(10, height // 2)
        image[y0:y1, x0:x1] = rng.integers(0, 255, 3, dtype=np.uint8)
    return image


def encode(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt)
    return buffer.getvalue()


def decode_rle(mask_message) -> np.ndarray:
    rle = {"size": list(mask_message.rle.size), "counts": mask_message.rle.counts.encode()}
    return mask_utils.decode(rle).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def scaled_prompt(prompt, image: np.ndarray):
    """(points, boxes) given as fractions of the image size -> pixels of `image`."""
    height, width = image.shape[:2]
    points, boxes = prompt
    return (
        [(x * width, y * height, neg) for x, y, neg in points],
        [(x0 * width, y0 * height, x1 * width, y1 * height) for x0, y0, x1, y1 in boxes],
    )


def segment_request(image_message, points, boxes, multimask=False, **fields):
    from labelgate.v1 import labelgate_pb2 as pb

    return pb.SegmentRequest(
        image=image_message,
        points=[pb.Point(x=x, y=y, negative=neg) for x, y, neg in points],
        boxes=[pb.Box(x_min=a, y_min=b, x_max=c, y_max=d) for a, b, c, d in boxes],
        multimask_output=multimask,
        **fields,
    )


def predictor_masks(predictor, image: np.ndarray, points, boxes, multimask: bool, return_logits: bool = False):
    """(objects, K, H, W) bool masks (or float logits) and (objects, K) scores from `SAM2ImagePredictor.predict`."""
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(
        point_coords=np.array([(x, y) for x, y, _ in points], np.float32) if points else None,
        point_labels=np.array([0 if neg else 1 for *_, neg in points], np.int32) if points else None,
        box=np.array(boxes, np.float32) if boxes else None,
        multimask_output=multimask,
        return_logits=return_logits,
    )
    if masks.ndim == 3:  # one object
        masks, scores = masks[None], scores[None]
    return (masks if return_logits else masks.astype(bool)), scores
