"""Grounding DINO in-process with PyTorch through transformers: the checkpoint's own processor for
pre- and post-processing, one forward pass per group of images that can share one exactly, and
the BERT text features cached per caption."""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch

from labelgate.models.backend import Detection, DetectItem, ModelInfo
from labelgate.models.grounding_dino.text_cache import DEFAULT_MAX_ENTRIES, install_text_cache
from labelgate.models.weights_hash import weights_version

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_SIZE = 8


def normalize_caption(text: str) -> str:
    """Lower case, single spaces, ending with "." (what the original Grounding DINO demo feeds the
    model: `caption.lower().strip()`, plus a "." if missing). Idempotent."""
    caption = " ".join(str(text).split()).lower()
    if not caption or caption.strip(" .") == "":
        raise ValueError("the caption is empty")
    if not caption.endswith("."):
        caption += "."
    return caption


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"an image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"an image must be H x W x 3 RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"an image must be uint8, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"an image must not be empty, got shape {image.shape}")


def _check_threshold(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _weight_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.safetensors")) + sorted(directory.glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors or *.bin weights in {directory}")
    return sorted(files + [directory / "config.json"])


class GroundingDinoBackend:
    def __init__(
        self,
        model: torch.nn.Module,
        processor,
        name: str,
        version: str,
        text_cache_entries: int = DEFAULT_MAX_ENTRIES,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.device = next(model.parameters()).device
        self.max_batch_size = max_batch_size
        self.text_cache = install_text_cache(model, text_cache_entries)
        self.info = ModelInfo(name=name, kind="grounding_dino", version=version, device=str(self.device))

    @classmethod
    def from_pretrained(
        cls,
        directory: Path | str,
        device: str = "cpu",
        name: str = "",
        text_cache_entries: int = DEFAULT_MAX_ENTRIES,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ) -> "GroundingDinoBackend":
        """Load a transformers `save_pretrained` directory (model + processor), e.g. a snapshot of
        `IDEA-Research/grounding-dino-tiny`."""
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        directory = Path(directory)
        version = weights_version(_weight_files(directory))
        processor = AutoProcessor.from_pretrained(directory)
        model = GroundingDinoForObjectDetection.from_pretrained(directory).to(device).eval()
        name = name or directory.resolve().name
        log.info("loaded Grounding DINO %s (%s, version %s) on %s", name, directory, version, device)
        return cls(
            model, processor, name=name, version=version, text_cache_entries=text_cache_entries, max_batch_size=max_batch_size
        )

    def detect(self, items: Sequence[DetectItem]) -> list[list[Detection] | Exception]:
        results: list[list[Detection] | Exception | None] = [None] * len(items)
        # Only one caption and one image size per forward pass: a batch pads images to a common
        # size (which changes the Swin features) and captions to a common length.
        groups: dict[tuple[str, tuple[int, int]], list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            try:
                caption = normalize_caption(item.caption)
                _check_image(item.image)
                _check_threshold("box_threshold", item.box_threshold)
                _check_threshold("text_threshold", item.text_threshold)
            except Exception as error:
                results[index] = error
                continue
            groups[(caption, tuple(item.image.shape[:2]))].append(index)
        for (caption, _), members in groups.items():
            for start in range(0, len(members), self.max_batch_size):
                chunk = members[start : start + self.max_batch_size]
                try:
                    for index, detections in zip(chunk, self._detect_group(caption, [items[i] for i in chunk])):
                        results[index] = detections
                except Exception as error:  # one failure fails this group only
                    log.debug("Grounding DINO group failed", exc_info=True)
                    for index in chunk:
                        results[index] = error
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _detect_group(self, caption: str, items: Sequence[DetectItem]) -> list[list[Detection] | Exception]:
        inputs = self.processor(
            images=[item.image for item in items],
            text=[caption] * len(items),
            return_tensors="pt",
            input_data_format="channels_last",
        ).to(self.device)
        outputs = self.model(**inputs)
        detections: list[list[Detection] | Exception] = []
        for row, item in enumerate(items):
            try:
                detections.append(self._post_process(outputs, inputs["input_ids"], row, item))
            except Exception as error:
                detections.append(error)
        return detections

    def _post_process(self, outputs, input_ids: torch.Tensor, row: int, item: DetectItem) -> list[Detection]:
        one = SimpleNamespace(logits=outputs.logits[row : row + 1], pred_boxes=outputs.pred_boxes[row : row + 1])
        height, width = item.image.shape[:2]
        result = self.processor.post_process_grounded_object_detection(
            one,
            input_ids[row : row + 1],
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
