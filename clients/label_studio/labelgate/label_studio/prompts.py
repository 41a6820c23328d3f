"""Interactive prompts: what a labeler clicked, dragged or typed, as Label Studio sends it in
`/predict`'s `params.context.result`, turned into labelgate pixels.

    keypoint:  {type: "keypointlabels", value: {x, y, keypointlabels: [label]}, is_positive,
                original_width, original_height, ...}
    rectangle: {type: "rectanglelabels", value: {x, y, width, height, rotation, rectanglelabels: [label]}, ...}
    text:      {type: "textarea", value: {text: ["cat . dog"]}, ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from labelgate.label_studio.coordinates import Box, box_to_pixels, point_to_pixels
from labelgate.label_studio.label_config import KEYPOINT, RECTANGLE, TEXTAREA


class PromptError(ValueError):
    """The context cannot be read as a prompt; the message says why."""


@dataclass(frozen=True)
class LabeledBox:
    box: Box  # pixels
    label: str


@dataclass(frozen=True)
class InteractivePrompt:
    points: tuple[tuple[float, float, bool], ...] = ()  # (x, y, negative) in pixels
    point_ids: tuple[str, ...] = ()  # each click's region id ("" where Label Studio sent none)
    boxes: tuple[LabeledBox, ...] = ()
    text: str = ""
    label: str = ""  # the label of the clicks: the first positive one's
    size: tuple[int, int] | None = None  # (width, height) Label Studio reports for the image

    @property
    def has_geometry(self) -> bool:
        return bool(self.points or self.boxes)


def prompt_from_context(context: Mapping | None) -> InteractivePrompt | None:
    """None when there is no interaction (batch mode). Clicks and boxes win over a text prompt
    when a context carries both."""
    results = (context or {}).get("result") or []
    if not results:
        return None
    points, point_ids, boxes, texts, labels, size = [], [], [], [], [], None
    for index, item in enumerate(results):
        kind = str(item.get("type", "")).lower()
        value = item.get("value") or {}
        try:
            if kind == KEYPOINT:
                size = _size(item)
                x, y = point_to_pixels(value, *size)
                negative = item.get("is_positive") is False
                points.append((x, y, negative))
                point_ids.append(str(item.get("id") or ""))
                labels.append((negative, _first(value.get(KEYPOINT))))
            elif kind == RECTANGLE:
                size = _size(item)
                boxes.append(LabeledBox(box_to_pixels(value, *size), _first(value.get(RECTANGLE))))
            elif kind == TEXTAREA:
                texts.extend(str(text) for text in value.get("text") or [] if str(text).strip())
        except (KeyError, TypeError, ValueError) as error:
            raise PromptError(f"context.result[{index}] ({kind or 'no type'}) is malformed: {error!r}") from None
    label = next((label for negative, label in labels if not negative and label), "") or next(
        (label for _, label in labels if label), "")
    return InteractivePrompt(points=tuple(points), point_ids=tuple(point_ids), boxes=tuple(boxes), text=" ".join(texts).strip(), label=label, size=size)


def _size(item: Mapping) -> tuple[int, int]:
    width, height = int(item["original_width"]), int(item["original_height"])
    if width <= 0 or height <= 0:
        raise ValueError(f"original size {width} x {height}")
    if item.get("image_rotation"):
        raise ValueError("the image is rotated in the editor; reset its rotation to use the model")
    return width, height


def _first(labels) -> str:
    return str(labels[0]) if labels else ""
