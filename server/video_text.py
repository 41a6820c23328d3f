"""Text to tracks: every instance a text prompt finds on one frame of a video session becomes a new
tracked object whose first prompt is its mask. Finding is an image Segment(text) on that frame, so
it picks models exactly as Segment does (a concept model named in `model`, else the detector with a
prompt segmenter) and the frame's features land in the image cache like any other image's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import cv2
import numpy as np

from labelgate.core.errors import InvalidInput
from labelgate.models.video_tracking import TrackPrompt
from labelgate.server.masks import PNG
from labelgate.server.queries import ImageRef, SegmentQuery


@dataclass(frozen=True)
class TextPrompt:
    text: str
    model: str = ""
    detector_model: str = ""
    box_threshold: float = 0.0
    text_threshold: float = 0.0
    max_objects: int = 0  # 0 = every instance found


@dataclass(frozen=True)
class FoundObject:
    object_id: int
    label: str
    score: float


async def objects_from_text(service, frame: np.ndarray, frame_index: int, prompt: TextPrompt,
                            first_id: int) -> list[tuple[FoundObject, TrackPrompt]]:
    """The instances of `prompt.text` on `frame` (H x W x 3 RGB), best scores first, numbered from
    `first_id`; an instance whose mask is empty is left out (nothing to track)."""
    if prompt.max_objects < 0:
        raise InvalidInput(f"max_objects {prompt.max_objects} is negative: send 0 for every instance, or a cap")
    png = await asyncio.to_thread(_png, frame)
    result = await service.segment(SegmentQuery(
        image=ImageRef(data=png), text=prompt.text, formats=(PNG,), model=prompt.model,
        detector_model=prompt.detector_model, box_threshold=prompt.box_threshold,
        text_threshold=prompt.text_threshold))
    scored = [(obj.detection_score or obj.masks[0].score, obj) for obj in result.objects if obj.masks]
    scored.sort(key=lambda pair: -pair[0])
    if prompt.max_objects:
        scored = scored[:prompt.max_objects]
    found = []
    for score, obj in scored:
        mask = cv2.imdecode(np.frombuffer(obj.masks[0].png, np.uint8), cv2.IMREAD_GRAYSCALE) > 0
        if not mask.any():
            continue
        object_id = first_id + len(found)
        empty = np.zeros((0, 2), np.float32)
        found.append((FoundObject(object_id, obj.label, float(score)),
                      TrackPrompt(frame_index, object_id, empty, np.zeros((0,), np.int32), mask=mask)))
    return found


def _png(frame: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"cv2.imencode failed for a frame of shape {frame.shape}")
    return buffer.tobytes()
