"""SAM 3 in process through transformers. Concepts (`Sam3Model` + `Sam3Processor`): the vision backbone
once per image (`get_vision_features`), the CLIP text encoder once per phrase (`get_text_features`, in
an LRU), then the DETR encoder and decoder, presence head and mask decoder per query on those
(`Sam3Model(vision_embeds=..., text_embeds=...)`), with the processor's own box normalisation and
`post_process_instance_segmentation`, so that instances are those of the transformers pipeline.
Clicks (`Sam3TrackerModel` + `Sam3TrackerProcessor`, models/sam3/tracker.py): the tracker's neck on
the same ViT output in that same encode, then its prompt encoder and mask decoder per click.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from labelgate.core.errors import InvalidInput, Unsupported
from labelgate.models.backend import (
    ConceptInstance,
    ConceptItem,
    ConceptSegmentationBackend,
    DecodedMasks,
    DecodeItem,
    ModelInfo,
    PromptSegmentationBackend,
)
from labelgate.models.kinds import PROMPT_SEGMENT
from labelgate.models.sam3 import tracker as sam3_tracker
from labelgate.models.sam3.concepts import ConceptImageFeatures
from labelgate.models.sam3.text_cache import DEFAULT_MAX_ENTRIES, PhraseCache
from labelgate.models.weights_hash import pretrained_version

log = logging.getLogger(__name__)

VISUAL_QUERY = "visual"  # the text Sam3Processor puts with exemplar boxes that come without a phrase
MAX_TEXT_TOKENS = 32  # Sam3Processor pads (and never truncates) every phrase to this many tokens


def query_inputs(processor, item: ConceptItem) -> dict:
    """The processor's tensors for one query: token ids and mask, exemplar boxes normalised to the
    image (cx, cy, w, h) with their labels."""
    boxes = np.asarray(item.boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(item.box_labels).reshape(-1)
    if len(labels) != len(boxes):
        raise InvalidInput(f"{len(boxes)} exemplar boxes but {len(labels)} box labels")
    if not set(labels.tolist()) <= {0, 1}:
        raise InvalidInput("exemplar box labels must be 1 (an example) or 0 (a counter-example)")
    if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2:] <= boxes[:, :2]):
        raise InvalidInput("exemplar boxes must be finite x0, y0, x1, y1 with x0 < x1 and y0 < y1")
    text = item.phrase.strip() or (VISUAL_QUERY if len(boxes) else "")
    if not text:
        raise InvalidInput("a concept query needs a phrase or at least one exemplar box")
    prompts = {}
    if len(boxes):
        prompts = {"input_boxes": [boxes.tolist()], "input_boxes_labels": [labels.tolist()]}
    inputs = processor(text=text, original_sizes=[list(item.features.orig_hw)], return_tensors="pt", **prompts)
    if inputs["input_ids"].shape[-1] > MAX_TEXT_TOKENS:
        raise InvalidInput(f"the phrase {item.phrase[:40]!r} is too long for SAM 3 ({MAX_TEXT_TOKENS - 2} tokens at most)")
    return dict(inputs, text=text)


class Sam3ConceptBackend(ConceptSegmentationBackend, PromptSegmentationBackend):
    """Concepts (`segment_concepts`) and, with a tracker (`tracker`, `tracker_processor`), clicks
    (`decode`), both on what one `encode` computes."""

    def __init__(self, model: torch.nn.Module, processor, name: str, version: str, text_cache_entries: int = DEFAULT_MAX_ENTRIES,
                 tracker: torch.nn.Module | None = None, tracker_processor=None):
        self.model = model.eval()
        self.processor = processor
        self.tracker, self.tracker_processor = tracker, tracker_processor
        self.device = next(model.parameters()).device
        self.text_cache: PhraseCache[torch.Tensor] = PhraseCache(text_cache_entries)
        self.info = ModelInfo(name=name, kind="sam3", version=version, device=str(self.device))
        # One copy per shape of the FPN position encodings, which depend on the shape alone.
        self._position_encodings: dict[tuple, torch.Tensor] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, directory: Path | str, device: str = "cpu", name: str = "",
                        text_cache_entries: int = DEFAULT_MAX_ENTRIES) -> "Sam3ConceptBackend":
        """A transformers `save_pretrained` directory of SAM 3 and its processor (a snapshot of
        `facebook/sam3`, or `write_sam3_demo_model`)."""
        from transformers import Sam3Model, Sam3Processor

        directory = Path(directory)
        version = pretrained_version(directory)
        processor = Sam3Processor.from_pretrained(directory)
        model = Sam3Model.from_pretrained(directory).to(device)
        tracker, tracker_processor = None, None
        if sam3_tracker.has_tracker(directory):
            tracker, tracker_processor = sam3_tracker.load_tracker(directory, model.vision_encoder.backbone)
        else:
            log.warning("%s has no SAM 3 tracker (a Sam3Model directory, not facebook/sam3's): no clicks on it", directory)
        name = name or directory.resolve().name
        log.info("loaded SAM 3 %s (%s, version %s) on %s", name, directory, version, device)
        return cls(model, processor, name=name, version=version, text_cache_entries=text_cache_entries,
                   tracker=tracker, tracker_processor=tracker_processor)

    def _shared(self, encodings: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The held copy of each (batch-1) position encoding; a copy of the first one seen, so that it
        does not keep a whole batch's tensor alive."""
        shared = []
        with self._lock:
            for encoding in encodings:
                key = (tuple(encoding.shape), encoding.dtype, encoding.device)
                if key not in self._position_encodings:
                    self._position_encodings[key] = encoding.clone()
                shared.append(self._position_encodings[key])
        return tuple(shared)

    @torch.inference_mode()
    def position_encodings(self, levels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The (shared) position encoding of each batch-1 FPN level, from its shape alone: for features
        read back from the shared cache tier, which does not store them (server/feature_codec.py)."""
        neck = self.model.vision_encoder.neck
        return self._shared([neck.position_encoding(level.shape, level.device, level.dtype) for level in levels])

    def unable(self) -> frozenset[str]:
        return frozenset() if self.tracker is not None else frozenset({PROMPT_SEGMENT})

    @torch.inference_mode()
    def encode(self, images: Sequence[np.ndarray]) -> list[ConceptImageFeatures | Exception]:
        try:
            # A copy: decoded pixels are read-only (the cache shares them), which torch.from_numpy warns about.
            pixels = self.processor.image_processor([np.array(image) for image in images], input_data_format="channels_last",
                                                    return_tensors="pt")["pixel_values"].to(self.device)
            vision = self.model.get_vision_features(pixel_values=pixels)
            clicks = sam3_tracker.tracker_levels(self.tracker, vision.last_hidden_state) if self.tracker is not None else None
        except Exception as error:  # one failure fails every image of this batch
            return [error] * len(images)
        positions = self._shared([encoding[:1] for encoding in vision.fpn_position_encoding])
        features = []
        for index, image in enumerate(images):
            levels = tuple(level[index : index + 1].clone() for level in vision.fpn_hidden_states)
            nbytes = sum(level.numel() * level.element_size() for level in levels)
            tracker = sam3_tracker.per_image(clicks, index, image.shape[:2]) if clicks is not None else None
            nbytes += tracker.nbytes if tracker is not None else 0
            features.append(ConceptImageFeatures(levels, positions, tuple(image.shape[:2]), nbytes, tracker))
        return features

    @torch.inference_mode()
    def decode(self, items: Sequence[DecodeItem]) -> list[DecodedMasks | Exception]:
        results: list[DecodedMasks | Exception | None] = [None] * len(items)
        groups: dict[tuple, list[tuple[int, dict]]] = {}
        for index, item in enumerate(items):
            try:
                if item.features.tracker is None:
                    raise Unsupported(f"SAM 3 model {self.info.name} has no tracker weights, so no clicks: serve the whole "
                                      "facebook/sam3 directory (a sam3_video config.json), not a Sam3Model one")
                inputs = sam3_tracker.prompt_inputs(self.tracker_processor, item.features.tracker, item.prompt)
            except Exception as error:
                results[index] = error
                continue
            groups.setdefault(sam3_tracker.group_key(inputs, item.prompt.multimask_output), []).append((index, inputs))
        for key, members in groups.items():
            try:
                decoded = sam3_tracker.decode_group(self.tracker, self.tracker_processor,
                                                    [items[index].features.tracker for index, _ in members],
                                                    [inputs for _, inputs in members], multimask=key[-1])
                for (index, _), masks in zip(members, decoded):
                    results[index] = masks
            except Exception as error:
                log.debug("SAM 3 click failed", exc_info=True)
                for index, _ in members:
                    results[index] = error
        return results

    def segment_concepts(self, items: Sequence[ConceptItem]) -> list[list[ConceptInstance] | Exception]:
        # One query per forward pass: queries of other images or prompts in one batch would be padded
        # to a common number of exemplar boxes, and batch-1 is what the pipeline runs exactly.
        results: list[list[ConceptInstance] | Exception] = []
        for item in items:
            try:
                results.append(self._segment(item))
            except Exception as error:
                log.debug("SAM 3 query failed", exc_info=True)
                results.append(error)
        return results

    def _text_features(self, text: str, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        def compute():
            return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output

        return self.text_cache.get(text, compute)

    @torch.inference_mode()
    def _segment(self, item: ConceptItem) -> list[ConceptInstance]:
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        inputs = query_inputs(self.processor, item)
        input_ids = inputs["input_ids"].to(self.device)
        attention_mask = inputs["attention_mask"].to(self.device)
        text = BaseModelOutputWithPooling(pooler_output=self._text_features(inputs["text"], input_ids, attention_mask))
        vision = Sam3VisionEncoderOutput(
            fpn_hidden_states=item.features.fpn_hidden_states, fpn_position_encoding=item.features.fpn_position_encoding
        )
        prompts = {key: inputs[key].to(self.device) for key in ("input_boxes", "input_boxes_labels") if key in inputs}
        outputs = self.model(vision_embeds=vision, text_embeds=text, attention_mask=attention_mask, **prompts)
        found = self.processor.post_process_instance_segmentation(
            outputs, threshold=item.score_threshold, mask_threshold=item.mask_threshold, target_sizes=[tuple(item.features.orig_hw)]
        )[0]
        masks = found["masks"].bool().cpu().numpy()
        boxes = found["boxes"].float().cpu().tolist()
        scores = found["scores"].float().cpu().tolist()
        return [
            ConceptInstance(mask=mask, box=tuple(box), score=score, label=item.phrase)
            for mask, box, score in zip(masks, boxes, scores)
        ]
