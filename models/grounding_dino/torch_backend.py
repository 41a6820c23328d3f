"""Grounding DINO in-process with PyTorch through transformers: the checkpoint's own processor for
pre- and post-processing, one forward pass per group of images that can share one exactly, and
the BERT text features cached per caption."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch

from labelgate.models.backend import Detection, DetectionBackend, DetectItem, ModelInfo
from labelgate.models.grounding_dino.processing import check_token_count, checked_caption, detections, model_inputs
from labelgate.models.grounding_dino.processing import normalize_caption  # noqa: F401  (re-exported)
from labelgate.models.grounding_dino.text_cache import DEFAULT_MAX_ENTRIES, install_text_cache
from labelgate.models.weights_hash import pretrained_version

log = logging.getLogger(__name__)



class GroundingDinoBackend(DetectionBackend):
    def __init__(
        self,
        model: torch.nn.Module,
        processor,
        name: str,
        version: str,
        text_cache_entries: int = DEFAULT_MAX_ENTRIES,
    ):
        self.model = model.eval()
        self.processor = processor
        self.device = next(model.parameters()).device
        self.text_cache = install_text_cache(model, text_cache_entries)
        self.info = ModelInfo(name=name, kind="grounding_dino", version=version, device=str(self.device))

    @classmethod
    def from_pretrained(
        cls,
        directory: Path | str,
        device: str = "cpu",
        name: str = "",
        text_cache_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> "GroundingDinoBackend":
        """Load a transformers `save_pretrained` directory (model + processor), e.g. a snapshot of
        `IDEA-Research/grounding-dino-tiny`."""
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        directory = Path(directory)
        version = pretrained_version(directory)
        processor = AutoProcessor.from_pretrained(directory)
        model = GroundingDinoForObjectDetection.from_pretrained(directory).to(device).eval()
        name = name or directory.resolve().name
        log.info("loaded Grounding DINO %s (%s, version %s) on %s", name, directory, version, device)
        return cls(
            model, processor, name=name, version=version, text_cache_entries=text_cache_entries
        )

    def detect(self, items: Sequence[DetectItem]) -> list[list[Detection] | Exception]:
        results: list[list[Detection] | Exception | None] = [None] * len(items)
        # Only one caption and one image size per forward pass: a batch pads images to a common
        # size (which changes the Swin features) and captions to a common length.
        groups: dict[tuple[str, tuple[int, int]], list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            try:
                caption = checked_caption(item)
            except Exception as error:
                results[index] = error
                continue
            groups[(caption, tuple(item.image.shape[:2]))].append(index)
        # The batch's size is the batcher's (--max-batch-size): no second limit here.
        for (caption, _), members in groups.items():
            try:
                for index, found in zip(members, self._detect_group(caption, [items[i] for i in members])):
                    results[index] = found
            except Exception as error:  # one failure fails this group only
                log.debug("Grounding DINO group failed", exc_info=True)
                for index in members:
                    results[index] = error
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _detect_group(self, caption: str, items: Sequence[DetectItem]) -> list[list[Detection] | Exception]:
        inputs = model_inputs(self.processor, [item.image for item in items], caption).to(self.device)
        check_token_count(inputs["input_ids"], self.model.config.max_text_len)
        outputs = self.model(**inputs)
        results: list[list[Detection] | Exception] = []
        for row, item in enumerate(items):
            try:
                one = slice(row, row + 1)
                results.append(
                    detections(self.processor, outputs.logits[one], outputs.pred_boxes[one], inputs["input_ids"][one], item)
                )
            except Exception as error:
                results.append(error)
        return results
