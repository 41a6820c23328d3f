"""A scripted stand-in for the labelgate SDK client, for the predictor tests: it answers like
labelgate would (SAM 2 masks with mask ids, Grounding DINO detections, concept instances) and
records every call as (method, image, keyword arguments)."""

from __future__ import annotations

import grpc
import numpy as np
import pycocotools.mask
from labelgate.client import (Detection, DetectResult, ImageId, LabelgateClientError, Mask, ModelInfo,
                              SegmentedObject, SegmentResult)

from labelgate.label_studio.images import ImageFetchError

WIDTH, HEIGHT = 40, 20
CONCEPTS = "concepts_demo"
INSTANCES_PER_PHRASE = 3


def mask(top: int, score: float, mask_id: str = "") -> Mask:
    pixels = np.zeros((HEIGHT, WIDTH), np.uint8)
    pixels[top:top + 5, 10:30] = 1
    rle = pycocotools.mask.encode(np.asfortranarray(pixels))
    return Mask(score=score, bbox=None, area=int(pixels.sum()), rle={"size": rle["size"], "counts": rle["counts"].decode()},
                polygons=[], png=None, shape=(HEIGHT, WIDTH), mask_id=mask_id)


class ScriptedClient:
    def __init__(self):
        self.calls = []
        self.answers = []  # each segment's result, None where it raised
        self.issued = 0  # mask ids handed out
        self.evicted: set[str] = set()  # mask ids labelgate no longer knows
        self.image_forgotten = False  # until the bytes come again, the image id is unknown

    def list_models(self):
        return [ModelInfo("sam2_demo", "sam2", "07a180f13cb4", "cpu", True),
                ModelInfo("gdino_demo", "grounding_dino", "fdcfc6f05dea", "cpu", True),
                ModelInfo(CONCEPTS, "sam3", "c0ffee12aa", "cpu", True)]

    def embed(self, image, model=""):
        self.calls.append(("embed", image, {}))
        return SegmentResult("img_1", WIDTH, HEIGHT, [], False)  # only image_id/size are read

    def segment(self, image, **kwargs):
        self.calls.append(("segment", image, kwargs))
        self.answers.append(None)
        if isinstance(image, ImageId) and self.image_forgotten:
            raise LabelgateClientError(grpc.StatusCode.NOT_FOUND, f"unknown image_id {image}", "Segment")
        self.image_forgotten = self.image_forgotten and isinstance(image, ImageId)
        if kwargs.get("refine") in self.evicted:
            raise LabelgateClientError(grpc.StatusCode.NOT_FOUND, f"unknown refine_mask_id {kwargs['refine']}", "Segment")
        if kwargs.get("exemplars") or (kwargs.get("text") and kwargs.get("model") == CONCEPTS):
            objects = [SegmentedObject([mask(index * 5, 0.9 - index / 10)], phrase.strip(), 0.5 - index / 10,
                                       (0.0, index * 5.0, 40.0, index * 5.0 + 5))
                       for phrase in (kwargs.get("text") or "").split(".") if phrase.strip() or not kwargs.get("text")
                       for index in range(INSTANCES_PER_PHRASE)]
        elif kwargs.get("text"):
            objects = [SegmentedObject([mask(0, 0.9)], "red car", 0.8, (4.0, 2.0, 24.0, 12.0)),
                       SegmentedObject([mask(10, 0.7)], "person", 0.6, (0.0, 10.0, 40.0, 20.0))]
        else:
            count = max(1, len(kwargs.get("boxes") or ())) if not kwargs.get("points") else 1
            objects = [SegmentedObject([mask(0, 0.3, self._mask_id(count)), mask(10, 0.8, self._mask_id(count))])
                       for _ in range(count)]
        self.answers[-1] = SegmentResult("img_1", WIDTH, HEIGHT, objects, False)
        return self.answers[-1]

    def detect(self, image, text, **kwargs):
        self.calls.append(("detect", image, {"text": text, **kwargs}))
        return DetectResult("img_1", WIDTH, HEIGHT, [Detection((4.0, 2.0, 24.0, 12.0), 0.8, "red car")])

    def _mask_id(self, objects: int) -> str:
        """As labelgate: only the masks of a one-object prompt can be refined."""
        if objects != 1:
            return ""
        self.issued += 1
        return f"mask_{self.issued:032d}"


class Fetcher:
    def fetch(self, reference, task_id=None):
        if "broken" in reference:
            raise ImageFetchError(f"image {reference!r} not found (HTTP 404)")
        return b"png bytes of " + reference.encode()


def task(task_id, image="/data/upload/1/a.png"):
    return {"id": task_id, "data": {"image": image}}


def click(x, y, label="person", positive=True, region_id=None):
    item = {"type": "keypointlabels", "original_width": WIDTH, "original_height": HEIGHT, "is_positive": positive,
            "value": {"x": x, "y": y, "keypointlabels": [label]}}
    return {**item, "id": region_id} if region_id else item


def rectangle(x, y, width, height, label):
    return {"type": "rectanglelabels", "original_width": WIDTH, "original_height": HEIGHT,
            "value": {"x": x, "y": y, "width": width, "height": height, "rectanglelabels": [label]}}
