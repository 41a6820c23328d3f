"""A cvat-sdk detection function: Grounding DINO boxes (or SAM 2 masks) for the labels you name,
or SAM 3 masks of every instance of each, computed by labelgate.

    cvat-cli task auto-annotate TASK_ID --function-module labelgate_cvat.detection_function \\
        -p labels=str:"car,person,traffic light" [-p masks=bool:true] [-p concept_model=str:sam3] \\
        [-p server=str:HOST:50051] [--conf-threshold 0.35] [--conv-mask-to-poly] [--allow-unmatched-labels]

`labels` are the task's label names (matched by name); Grounding DINO looks for them as one
caption. `masks` returns a SAM 2 mask per detection (polygons with --conv-mask-to-poly) instead of
its box. `concept_model` (or LABELGATE_CONCEPT_MODEL) names a labelgate concept model (kind sam3):
then each label is one concept and every instance of it comes back as a mask (polygon with
--conv-mask-to-poly; its box with masks=bool:false). Without `server`, LABELGATE_SERVER (and
LABELGATE_AUTH_TOKEN / LABELGATE_TLS_CA) name the server. The confidence threshold is Grounding
DINO's box threshold, or the concept model's instance score threshold (default: labelgate's, 0.35).
"""

from __future__ import annotations

import os
from typing import Optional

import cvat_sdk.auto_annotation as cvataa
import cvat_sdk.models as models
import PIL.Image
from cvat_sdk.masks import encode_mask

from labelgate.client import Client
from labelgate_cvat.detections import CONCEPT_MODEL_ENV, Found, find, outline


def parse_labels(labels: str) -> list[str]:
    names = [name.strip() for name in labels.split(",") if name.strip()]
    if not names:
        raise ValueError("name the labels to detect, e.g. -p labels=str:\"car,person\"")
    if len(set(names)) != len(names):
        raise ValueError(f"labels must be unique, got {names}")
    return names


class LabelgateDetectionFunction:
    def __init__(self, labels: str = "", server: Optional[str] = None, masks: Optional[bool] = None,
                 text_threshold: float = 0.0, concept_model: Optional[str] = None):
        self._names = parse_labels(labels)
        self._ids = {name: index for index, name in enumerate(self._names)}
        self._concept_model = os.environ.get(CONCEPT_MODEL_ENV, "") if concept_model is None else concept_model
        self._masks = bool(self._concept_model) if masks is None else masks  # default: masks from a concept model
        self._text_threshold = text_threshold
        self._options = {"target": server} if server else {}
        self._client: Optional[Client] = None
        kind = "mask" if self._masks else "rectangle"
        self.spec = cvataa.DetectionFunctionSpec(
            labels=[cvataa.label_spec(name, index, type=kind) for index, name in enumerate(self._names)]
        )

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client.from_env(**self._options)
        return self._client

    def detect(self, context: cvataa.DetectionFunctionContext,
               image: PIL.Image.Image) -> list[models.LabeledShapeRequest]:
        found = find(self.client, image, self._names, threshold=context.conf_threshold or 0.0,
                     text_threshold=self._text_threshold, masks=self._masks, concept_model=self._concept_model)
        shapes = (self._shape(item, context.conv_mask_to_poly) for item in found)
        return [shape for shape in shapes if shape is not None]

    def _shape(self, item: Found, to_polygon: bool) -> Optional[models.LabeledShapeRequest]:
        label_id = self._ids[item.label]
        if not self._masks:
            return cvataa.rectangle(label_id, list(item.box), score=item.score)
        if to_polygon:
            points = outline(item.mask)
            return None if points is None else cvataa.polygon(label_id, points, score=item.score)
        bitmap = item.mask.to_numpy()
        return cvataa.mask(label_id, encode_mask(bitmap), score=item.score) if bitmap.any() else None


create = LabelgateDetectionFunction
