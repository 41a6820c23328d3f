"""One CVAT track as a labelgate video session. Shared by the cvat-sdk tracking function and the
nuclio tracker.

CVAT tracks a shape frame by frame and never says which frame comes next, so a track is a `stream`
session (OpenVideo) opened on the shape's frame with the shape as its prompt; each next frame is
appended (AppendFrames, keeping only a window of frames on the server) and tracked one step
(Propagate). SAM 2 thus carries its memory of the earlier frames along, as in a whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from labelgate.client import Client
from labelgate.client.results import Mask
from labelgate.client.tracking import ObjectPrompt
from labelgate.client.video_session import VideoSession

OBJECT_ID = 1  # one object per session: CVAT keeps one state per tracked shape


@dataclass(frozen=True)
class Track:
    """What CVAT keeps between frames: the server-side session (its id is also its capability)."""

    session_id: str


def start_track(client: Client, image: bytes, *, box: Optional[Sequence[float]] = None,
                mask: Optional[np.ndarray] = None) -> Track:
    """A session on `image` with the object given by its box (x_min, y_min, x_max, y_max) or its
    mask (H x W bool)."""
    if mask is not None:
        if not mask.any():
            raise ValueError("the shape to track covers no pixel of the frame")
        prompt = ObjectPrompt(OBJECT_ID, mask=mask)
    elif box is not None:
        prompt = ObjectPrompt(OBJECT_ID, box=[float(v) for v in box])
    else:
        raise ValueError("a track starts from a box or a mask")
    session = client.open_video([image], stream=True, timeout=client.timeout)
    try:
        session.add_prompts([prompt])
    except Exception:
        session.close()
        raise
    return Track(session.session_id)


def track_next(client: Client, track: Track, image: bytes, *, polygons: bool = False) -> Mask:
    """Appends `image` to the track and tracks the object onto it: the object's mask there (with its
    polygons if asked; empty where SAM 2 lost the object). A session the server lost raises NOT_FOUND:
    CVAT keeps only its id, so there is nothing to replay (the callers start again from the shape)."""
    session = VideoSession.attach(client, track.session_id, timeout=client.timeout, stream_timeout=client.timeout)
    frame_count = session.append_frames([image], release_old_frames=True)
    formats = ("coco_rle", "polygons") if polygons else ("coco_rle",)
    [frame] = list(session.propagate(start_frame=frame_count - 1, max_frames=1, formats=formats))
    return frame.masks[OBJECT_ID]


def close_track(client: Client, track: Track) -> None:
    """Frees the session now rather than at its idle expiry; one already gone is fine."""
    VideoSession.attach(client, track.session_id, timeout=client.timeout).close()


def mask_box(mask: Mask) -> Optional[list[float]]:
    """The mask's tight box [x_min, y_min, x_max, y_max] (exclusive max); None when empty."""
    if mask.bbox is None or mask.area == 0:
        return None
    return [float(v) for v in mask.bbox]


def clipped_box(box: Sequence[float], width: int, height: int) -> list[float]:
    """A CVAT rectangle cut to the frame (CVAT lets one reach past the edges; labelgate refuses that)."""
    x_min, y_min, x_max, y_max = (float(v) for v in box[:4])
    return [min(max(x_min, 0.0), width), min(max(y_min, 0.0), height), min(max(x_max, 0.0), width), min(max(y_max, 0.0), height)]


def polygon_mask(points: Sequence[float], height: int, width: int) -> np.ndarray:
    """A CVAT polygon [x1, y1, x2, y2, ...] rasterised to an H x W bool mask."""
    if len(points) < 6 or len(points) % 2:
        raise ValueError(f"a polygon needs 3 or more [x, y] points, got {len(points)} numbers")
    canvas = Image.new("1", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in zip(points[::2], points[1::2])], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)

