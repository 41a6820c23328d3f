"""Grounding DINO through labelgate for a list of CVAT label names: the caption built from the
names, each detection's phrase mapped back to one name, and SAM 2 masks when asked for; or a
concept model (kind sam3) that segments every instance of each name. Shared by the nuclio
detector and the cvat-sdk detection function."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from labelgate.client import Client, Mask

Box = tuple[float, float, float, float]

# Names the labelgate concept model (kind sam3) that finds the labels instead of Grounding DINO.
CONCEPT_MODEL_ENV = "LABELGATE_CONCEPT_MODEL"

# What Grounding DINO's phrases carry besides words: BERT's special tokens and the caption's dots.
_NOT_WORDS = re.compile(r"\[(?:SEP|CLS|PAD|UNK|MASK)\]|[.?]", re.IGNORECASE)


@dataclass(frozen=True)
class Found:
    label: str  # one of the names asked for
    score: float
    box: Box  # x_min, y_min, x_max, y_max in pixels, inside the image
    mask: Optional[Mask] = None  # set for masks and concept models (COCO RLE + polygons)


def phrase(name: str) -> str:
    """How a label name is said in the caption: "Traffic_light" -> "traffic light". The caption's
    separators ("." and "?") become spaces: "St. Bernard" is one phrase, "st bernard"."""
    return " ".join(_NOT_WORDS.sub(" ", name.replace("_", " ")).split()).lower()


def caption(names: Sequence[str]) -> str:
    """Grounding DINO's caption for label names: "car . traffic light ."."""
    return " . ".join(phrase(name) for name in names) + " ."


def _contains(words: list[str], part: list[str]) -> bool:
    return any(words[i:i + len(part)] == part for i in range(len(words) - len(part) + 1))


def label_for(detected: str, names: Sequence[str]) -> Optional[str]:
    """The label name a detection's phrase stands for. A phrase may be the label itself, part of
    it ("traffic" for "traffic light"), or run into other words; it gets the one label it
    names, and None when it names none or several ("cat dog"): CVAT gets no guessed label."""
    words = _NOT_WORDS.sub(" ", detected).lower().split()
    if not words:
        return None
    by_phrase = {phrase(name): name for name in names}
    if " ".join(words) in by_phrase:
        return by_phrase[" ".join(words)]
    candidates = [name for said, name in by_phrase.items()
                  if _contains(said.split(), words) or _contains(words, said.split())]
    return candidates[0] if len(candidates) == 1 else None


def _clip(box: Box, width: int, height: int) -> Box:
    x_min, y_min, x_max, y_max = box
    return (min(max(x_min, 0.0), width), min(max(y_min, 0.0), height),
            min(max(x_max, 0.0), width), min(max(y_max, 0.0), height))


def find(client: Client, image, names: Sequence[str], *, threshold: float = 0.0, text_threshold: float = 0.0,
         masks: bool = False, concept_model: str = "") -> list[Found]:
    """The objects Grounding DINO finds for `names` (one labelgate call): with `masks`, Segment
    with the caption as text prompt (boxes plus a SAM 2 mask each), else Detect. With
    `concept_model` (a sam3 model's name), Segment on that model instead: each name is one
    concept, and every instance comes back with its box and mask, labelled with its phrase.
    Thresholds: 0 = the server's defaults (0.35 / 0.25; a concept model's instance score: 0.35)."""
    text = caption(names)
    if masks or concept_model:
        result = client.segment(image, text=text, box_threshold=threshold, text_threshold=text_threshold,
                                model=concept_model, formats=("coco_rle", "polygons"))
        items = [(obj.label, obj.detection_score, obj.prompt_box, obj.best) for obj in result.objects]
    else:
        result = client.detect(image, text, box_threshold=threshold, text_threshold=text_threshold)
        items = [(d.label, d.score, d.box, None) for d in result.detections]
    found = []
    for detected, score, box, mask in items:
        name = label_for(detected, names)
        if name is not None and box is not None:
            found.append(Found(name, float(score), _clip(box, result.width, result.height), mask))
    return found


def outline(mask: Mask) -> Optional[list[float]]:
    """The mask's largest outer polygon as CVAT polygon points [x1, y1, x2, y2, ...] (CVAT
    polygons have no holes); None when it has no polygon of 3 or more points."""
    best, best_area = None, 0.0
    for points, hole in mask.polygons:
        if hole or len(points) < 3:
            continue
        x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
        area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
        if best is None or area > best_area:
            best, best_area = points, area
    return None if best is None else [float(v) for v in best.reshape(-1)]
