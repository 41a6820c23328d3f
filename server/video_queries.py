"""The video service's requests and results, transport-neutral (the servicer converts protobuf)."""

from __future__ import annotations

from dataclasses import dataclass

from labelgate.server.masks import EncodedMask
from labelgate.server.queries import BoxPrompt, ImageRef, PointPrompt

FORWARD, BACKWARD, BOTH = "forward", "backward", "both"


@dataclass(frozen=True)
class VideoSource:
    """A video file's bytes, or the frames as images (bytes or ids)."""

    video: bytes = b""
    frames: tuple[ImageRef, ...] = ()
    stream: bool = False  # frames will be appended: track as a long clip from the start


@dataclass(frozen=True)
class ObjectPromptQuery:
    object_id: int
    points: tuple[PointPrompt, ...] = ()
    box: BoxPrompt | None = None
    mask_png: bytes = b""


@dataclass(frozen=True)
class PropagateQuery:
    start_frame: int | None = None  # None: the earliest frame prompted since the last Propagate
    direction: str = FORWARD
    max_frames: int = 0  # per direction, 0 = to the end
    formats: tuple[str, ...] = ()
    object_ids: tuple[int, ...] = ()  # which objects to send, () = all


@dataclass(frozen=True)
class OpenedVideo:
    session_id: str
    frame_count: int
    width: int
    height: int
    timestamps: tuple[float, ...]
    model: str


@dataclass(frozen=True)
class AppendedFrames:
    frame_count: int
    session_bytes: int


@dataclass(frozen=True)
class EncodedObject:
    object_id: int
    mask: EncodedMask


@dataclass(frozen=True)
class EncodedFrame:
    frame_index: int
    timestamp: float
    objects: tuple[EncodedObject, ...]
