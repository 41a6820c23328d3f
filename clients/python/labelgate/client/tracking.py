"""Video tracking with the synchronous client: `Client.track(video, prompts)` opens a session on the
server, sends the prompts, and yields each frame's masks as the server streams them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from labelgate.client import messages
from labelgate.client.images import ImageLike, encode_image
from labelgate.client.results import Mask, mask_from_pb
from labelgate.v1 import labelgate_pb2 as pb

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi")
DIRECTIONS = {"forward": pb.PROPAGATE_FORWARD, "backward": pb.PROPAGATE_BACKWARD, "both": pb.PROPAGATE_BOTH}
# A video file (path or bytes), or its frames as images (paths, bytes, PIL images, H x W x 3 arrays).
VideoLike = Union[str, Path, bytes, Sequence[ImageLike]]


@dataclass(frozen=True)
class ObjectPrompt:
    """Prompts for one object on one frame: clicks (x, y) or (x, y, negative), at most one box
    (x_min, y_min, x_max, y_max), or a mask (H x W bool array) instead."""

    object_id: int
    frame: int = 0
    points: Sequence[Sequence] = ()
    box: Optional[Sequence[float]] = None
    mask: Optional[np.ndarray] = None


@dataclass(frozen=True)
class OpenedVideo:
    """The clip as the server decoded it, for prompts that depend on it (`track` accepts a function
    of it in place of the prompts: percent boxes need the size, frames are checked against its length)."""

    frame_count: int
    width: int
    height: int
    timestamps: tuple[float, ...]  # seconds, for video files; empty for frames sent as images


Prompts = Union[Iterable[ObjectPrompt], Callable[[OpenedVideo], Iterable[ObjectPrompt]]]


@dataclass(frozen=True)
class TrackedFrame:
    frame_index: int
    timestamp: float  # seconds, for video files
    masks: dict[int, Mask] = field(default_factory=dict)  # object id -> its mask (Mask.score: visible probability)


@dataclass(frozen=True)
class FoundObject:
    """An object a text prompt added: its id in the session, the phrase or detector label, the score."""

    object_id: int
    label: str
    score: float


@dataclass(frozen=True)
class TextTracks:
    """What `add_text` answers: the objects it added (best score first) and the frame's masks of
    every object of the session."""

    found: list[FoundObject]
    frame: TrackedFrame


@dataclass(frozen=True)
class TextPrompt:
    """Text to tracks for `track`: every instance of `text` ("car . person .") on `frame` becomes an
    object (see `VideoSession.add_text` for the other fields; 0 / "" = the server's defaults)."""

    text: str
    frame: int = 0
    model: str = ""
    detector_model: str = ""
    box_threshold: float = 0.0
    text_threshold: float = 0.0
    max_objects: int = 0


def open_video_request(video: VideoLike, model: str = "", stream: bool = False) -> pb.OpenVideoRequest:
    """`stream`: frames will be appended (`VideoSession.append_frames`); see OpenVideoRequest.stream."""
    if isinstance(video, (str, Path)) and Path(video).suffix.lower() in VIDEO_SUFFIXES:
        return pb.OpenVideoRequest(video=Path(video).read_bytes(), model=model, stream=stream)
    if isinstance(video, (bytes, bytearray)):
        return pb.OpenVideoRequest(video=bytes(video), model=model, stream=stream)
    if isinstance(video, (str, Path)):
        raise ValueError(f"{video}: not a video file ({', '.join(VIDEO_SUFFIXES)}); pass a list of frames for images")
    return pb.OpenVideoRequest(frames=video_frames(video), model=model, stream=stream)


def video_frames(frames: Sequence[ImageLike]) -> pb.VideoFrames:
    return pb.VideoFrames(frames=[pb.Image(data=encode_image(frame)) for frame in frames])


def add_text_request(frame: int, prompt: TextPrompt, formats: Iterable[str]) -> pb.AddPromptsRequest:
    if not prompt.text.strip():
        raise ValueError("add_text needs text, e.g. \"car . person .\"")
    if prompt.max_objects < 0:
        raise ValueError(f"max_objects {prompt.max_objects} is negative: 0 for every instance, or a cap")
    return pb.AddPromptsRequest(frame_index=frame, text=prompt.text, text_model=prompt.model,
                                detector_model=prompt.detector_model, box_threshold=prompt.box_threshold,
                                text_threshold=prompt.text_threshold, max_objects=prompt.max_objects,
                                formats=messages.formats_to_pb(formats))


def add_prompts_requests(session_id: str, prompts: Iterable[ObjectPrompt]) -> list[pb.AddPromptsRequest]:
    """One request per prompted frame, in frame order."""
    by_frame: dict[int, list[pb.ObjectPrompt]] = {}
    for prompt in prompts:
        message = pb.ObjectPrompt(object_id=prompt.object_id, points=messages.points_to_pb(prompt.points))
        if prompt.box is not None:
            message.box.CopyFrom(messages.boxes_to_pb([prompt.box])[0])
        if prompt.mask is not None:
            message.mask_png = encode_image(np.asarray(prompt.mask, dtype=bool))  # 0 / 255 PNG
        by_frame.setdefault(prompt.frame, []).append(message)
    return [pb.AddPromptsRequest(session_id=session_id, frame_index=frame, objects=objects)
            for frame, objects in sorted(by_frame.items())]


def propagate_request(session_id: str, direction: str, start_frame: Optional[int], max_frames: int,
                      formats: Iterable[str]) -> pb.PropagateRequest:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}: choose {', '.join(DIRECTIONS)}")
    request = pb.PropagateRequest(session_id=session_id, direction=DIRECTIONS[direction], max_frames=max_frames,
                                  formats=messages.formats_to_pb(formats))
    if start_frame is not None:
        request.start_frame = start_frame
    return request


def prompts_for(prompts: Prompts, opened: pb.OpenVideoResponse) -> Iterable[ObjectPrompt]:
    if not callable(prompts):
        return prompts
    return prompts(OpenedVideo(opened.frame_count, opened.width, opened.height, tuple(opened.timestamps)))


def frame_from_pb(message: pb.TrackedFrame, shape: tuple[int, int]) -> TrackedFrame:
    return TrackedFrame(message.frame_index, message.timestamp,
                        {obj.object_id: mask_from_pb(obj.mask, shape) for obj in message.objects})


def track(client, video: VideoLike, prompts: Prompts = (), **options) -> Iterator[TrackedFrame]:
    """See `Client.track`. The session is closed when the iterator ends or is closed; one lost on the
    server (restart, TTL) is reopened and its prompts replayed (`video_session`)."""
    from labelgate.client.video_session import track_on  # it builds on this module

    return track_on([client], video, prompts, **options)


def track_async(client, video: VideoLike, prompts: Prompts = (), **options) -> AsyncIterator[TrackedFrame]:
    """`track` for the AsyncClient: an async iterator of frames."""
    from labelgate.client.video_session import track_on_async

    return track_on_async([client], video, prompts, **options)


def text_prompt(text: str | TextPrompt, text_frame: int = 0, text_model: str = "", **settings) -> Optional[TextPrompt]:
    """`track`'s text arguments as one TextPrompt (None without text)."""
    if isinstance(text, TextPrompt):
        return text
    return TextPrompt(text, frame=text_frame, model=text_model, **settings) if text else None


def found_from_pb(response: pb.AddPromptsResponse) -> list[FoundObject]:
    return [FoundObject(found.object_id, found.label, found.score) for found in response.found]
