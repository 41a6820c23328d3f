"""The bookkeeping of a video session that outlives its server-side one (see `video_session`): what
it was told, to tell a new session the same, and how its frame numbers map to a new session's.
It makes no calls."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Optional, Union

import grpc

from labelgate.client.errors import LabelgateClientError
from labelgate.v1 import labelgate_pb2 as pb

# NOT_FOUND: the server does not know the session (restarted, expired, closed); UNAVAILABLE: the
# server is gone. Other codes are the caller's to fix and are raised.
LOST_CODES = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE})
# Reopens in a row without a frame or a call getting through before the error is raised.
MAX_REOPENS_WITHOUT_PROGRESS = 2
# Frames the log keeps after a release besides the prompted ones: the server's default --video-window.
DEFAULT_KEEP_FRAMES = 16

Frame = Union[bytes, str]  # an encoded frame, or the image_id of one the server holds



class SessionLost(LabelgateClientError):
    """A `Propagate` stream that ended before its last frame (the session was closed under it), or a
    replayed text prompt that found other objects than the first time."""


def expected_frames(start: int, direction: str, max_frames: int, frame_count: int) -> list[int]:
    """The frames a Propagate sends, in order (see PropagateRequest in the proto)."""
    limit = max_frames if max_frames > 0 else frame_count
    forward = list(range(start, min(frame_count, start + limit)))
    backward = list(range(start, max(-1, start - limit), -1))
    return {"forward": forward, "backward": backward, "both": forward + backward[1:]}[direction]


class SessionLog:
    """What a session was told, to tell a new one the same: the OpenVideo request, the frames
    appended since, every AddPrompts in order (with the ids a text prompt added), which frames hold
    prompts and which changed since the last Propagate, how far forward it was tracked.

    Frame numbers here are the caller's; `server_frames` maps them to a server session opened on
    fewer frames (after a release), None while they are the same."""

    def __init__(self, open_request: Optional[pb.OpenVideoRequest], keep_frames: int = DEFAULT_KEEP_FRAMES):
        self.open_request = open_request  # None: a session attached by id, which cannot be reopened
        self.keep_frames = keep_frames
        self.frames: Optional[list[Optional[Frame]]] = _frames_of(open_request)  # None for a video file
        self.frame_count = len(self.frames) if self.frames is not None else 0
        self.server_frames: Optional[list[int]] = None
        self.prompt_requests: list[pb.AddPromptsRequest] = []
        self.found_ids: list[list[int]] = []  # per prompt request, the objects its text added
        self.prompted_frames: set[int] = set()
        self.changed_frames: set[int] = set()
        self.object_ids: list[int] = []  # in the order first prompted, as the server lists them
        self.tracked_to = -1  # the last frame a completed forward Propagate reached
        self.reopens = 0
        self._without_progress = 0
        self._released_below = 0

    def record_prompts(self, request: pb.AddPromptsRequest, found_ids: Sequence[int] = ()) -> None:
        self.prompt_requests.append(request)
        self.found_ids.append(list(found_ids))
        self.prompted_frames.add(request.frame_index)
        self.changed_frames.add(request.frame_index)
        ids = [obj.object_id for obj in request.objects] + list(found_ids)
        self.object_ids += [object_id for object_id in dict.fromkeys(ids) if object_id not in self.object_ids]
        self.progressed()

    def record_append(self, frames: Sequence[Frame], release_old_frames: bool, server_frame_count: int) -> None:
        if self.open_request is None:  # attached: the server's count is all there is to know
            self.frame_count = server_frame_count
            return
        first, self.frame_count = self.frame_count, self.frame_count + len(frames)
        if self.server_frames is not None:
            self.server_frames.extend(range(first, self.frame_count))
        if self.frames is None:
            return
        self.frames.extend(frames)
        if release_old_frames:  # as the server does: all but the prompted frames and the last few
            for index in range(self._released_below, max(0, self.frame_count - self.keep_frames)):
                if index not in self.prompted_frames:
                    self.frames[index] = None
            self._released_below = max(self._released_below, self.frame_count - self.keep_frames)
        self.progressed()

    def record_tracked(self, frames: Iterable[int], direction: str) -> None:
        if direction != "backward":
            self.tracked_to = max([self.tracked_to, *frames])

    def start_frame(self, start_frame: Optional[int]) -> int:
        """The server's default start, worked out here so that a resumed Propagate starts where the
        first one did: the earliest frame prompted since the last Propagate, else the earliest prompted."""
        if start_frame is not None:
            return start_frame
        if not self.prompted_frames:
            raise ValueError("no object has prompts yet: add_prompts first, then propagate")
        return min(self.changed_frames or self.prompted_frames)

    def check_objects(self, object_ids: Iterable[int]) -> None:
        unknown = sorted(set(object_ids) - set(self.object_ids))
        if unknown and self.open_request is not None:
            raise ValueError(f"unknown object ids {unknown}: this session's objects are {self.object_ids}")

    # --- frame numbers ---------------------------------------------------------------------------

    def to_server(self, frame: int) -> int:
        if self.server_frames is None:
            return frame
        at = bisect.bisect_left(self.server_frames, frame)
        if at == len(self.server_frames) or self.server_frames[at] != frame:
            raise ValueError(f"frame {frame} was released (append_frames release_old_frames) before the session was "
                             "reopened: only the prompted frames and the last ones are kept; prompt or track within those")
        return at

    def to_client(self, frame: int) -> int:
        return frame if self.server_frames is None else self.server_frames[frame]

    @property
    def server_frame_count(self) -> int:
        return self.frame_count if self.server_frames is None else len(self.server_frames)

    # --- reopening -------------------------------------------------------------------------------

    def reopen_request(self) -> pb.OpenVideoRequest:
        """The OpenVideo of a session standing for this one: the first, with the frames appended
        since, or, after a release, the frames still held (`server_frames` then maps them)."""
        if self.frames is None:
            self.server_frames = None
            return self.open_request
        held = [index for index, frame in enumerate(self.frames) if frame is not None]
        self.server_frames = None if len(held) == len(self.frames) else held
        request = pb.OpenVideoRequest(model=self.open_request.model, stream=self.open_request.stream)
        request.frames.frames.extend(_image(self.frames[index]) for index in held)
        return request

    def rebuild_request(self) -> Optional[pb.PropagateRequest]:
        """A Propagate (its frames not sent to the caller) over what earlier forward Propagates
        tracked, from the earliest prompted frame, or None when there is nothing to track again."""
        if self.tracked_to < 0 or not self.prompted_frames or min(self.prompted_frames) > self.tracked_to:
            return None
        start = self.to_server(min(self.prompted_frames))
        end = self.tracked_to if self.server_frames is None else bisect.bisect_right(self.server_frames, self.tracked_to) - 1
        return pb.PropagateRequest(start_frame=start, max_frames=end - start + 1, object_ids=self.object_ids[:1])

    def check_replayed(self, index: int, response: pb.AddPromptsResponse) -> None:
        found = [obj.object_id for obj in response.found]
        if found != self.found_ids[index]:
            request = self.prompt_requests[index]
            raise SessionLost(grpc.StatusCode.ABORTED,
                              f"the session was lost and its text prompt {request.text!r} on frame {request.frame_index}, "
                              f"replayed, found objects {found}, not {self.found_ids[index]}: the replica's models differ; "
                              "open the video again", "AddPrompts")

    def progressed(self) -> None:
        self._without_progress = 0

    def may_reopen(self, error: LabelgateClientError) -> bool:
        """Whether `error` lost the session and another reopen is allowed (counts it)."""
        if (self.open_request is None or error.code not in LOST_CODES
                or self._without_progress >= MAX_REOPENS_WITHOUT_PROGRESS):
            return False
        self._without_progress += 1
        self.reopens += 1
        return True


def _frames_of(request: Optional[pb.OpenVideoRequest]) -> Optional[list[Optional[Frame]]]:
    if request is None or request.WhichOneof("source") != "frames":
        return None
    return [image.data if image.WhichOneof("source") == "data" else image.image_id for image in request.frames.frames]


def _image(frame: Frame) -> pb.Image:
    return pb.Image(image_id=frame) if isinstance(frame, str) else pb.Image(data=frame)
