"""Capability `track_video`: objects prompted on any frame of a clip, tracked through it.

A backend opens one `TrackingSession` per clip; the session reads frames on demand from a
`FrameSource`, so a clip need not fit in memory. No protobuf, no grpc here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from labelgate.models.backend import Backend


class FrameSource(ABC):
    """The frames of one clip, numbered from 0, all `height` x `width`. `num_frames` may grow between
    a session's calls (frames appended to a stream)."""

    num_frames: int
    height: int
    width: int

    @abstractmethod
    def frame(self, index: int) -> np.ndarray:
        """Frame `index` as H x W x 3 uint8 RGB."""

    def timestamp(self, index: int) -> float:
        """Presentation time in seconds (0 where the source has none)."""
        return 0.0

    def released(self, index: int) -> bool:
        """Whether frame `index`'s pixels were given up (a long stream keeps only a window of them)."""
        return False

    def content_key(self, index: int) -> bytes | None:
        """A digest of frame `index`'s content, equal for equal frames of any session, so that they
        can share work; None where the source cannot tell cheaply."""
        return None

    @property
    def nbytes(self) -> int:
        """Memory the source holds (encoded data and decoded frames it caches)."""
        return 0


@dataclass(frozen=True)
class TrackPrompt:
    """Prompts for one object on one frame, in frame pixels.

    points: (N, 2) float32 and labels: (N,) int32 (1 positive, 0 negative); box: (4,) float32
    x0, y0, x1, y1 or None; mask: H x W bool (instead of points and box) or None.
    """

    frame_index: int
    object_id: int
    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class TrackedObject:
    object_id: int
    mask: np.ndarray  # H x W bool at the frame's size
    score: float  # probability that the object is visible on this frame


@dataclass(frozen=True)
class TrackedFrame:
    frame_index: int
    objects: list[TrackedObject]


class TrackingSession(ABC):
    """One clip's tracking state. Not safe for concurrent use: the caller runs one call at a time."""

    frames_tracked: int = 0  # model runs so far: one per add_prompt, one per propagated frame

    @abstractmethod
    def add_prompt(self, prompt: TrackPrompt) -> TrackedFrame:
        """Adds or replaces `prompt.object_id`'s prompt on its frame; that frame's masks of every object."""

    @abstractmethod
    def propagate(self, start_frame: int, reverse: bool, max_frames: int) -> Iterator[TrackedFrame]:
        """Tracks every object from `start_frame` on (backward if `reverse`), at most `max_frames` frames
        (0 = to the end), yielding each frame once computed. Closing the iterator stops the work."""

    @property
    @abstractmethod
    def object_ids(self) -> list[int]: ...

    @property
    @abstractmethod
    def prompted_frames(self) -> list[int]:
        """Frames holding prompts (conditioning frames), ascending."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Memory held by this session's tracking state (the frame source's own included)."""

    def close(self) -> None:
        """Frees the state; the session is not used afterwards."""


class VideoTrackingBackend(Backend):
    """Capability `track_video`."""

    @abstractmethod
    def open_video(self, frames: FrameSource, window: int, long_clip: bool = False) -> TrackingSession:
        """A session on `frames` that keeps per-frame memory for at most `window` frames around the
        last one tracked, besides the prompted frames (docs/video.md). `long_clip`: frames will be
        appended, so track as in a clip too long for its length to matter."""
