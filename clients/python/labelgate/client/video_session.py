"""A video session that outlives the server-side one it stands for.

A server keeps a tracking session in its memory only: a restart, a scale-down, the idle TTL or a
`CloseVideo` from elsewhere loses it, and its next call answers NOT_FOUND (a server gone answers
UNAVAILABLE; one closed mid-`Propagate` ends the stream early). `VideoSession` then reopens the
video (on the same replica if it answers, else on the next of `clients`), replays every
`AddPrompts` it sent, in order, and starts the interrupted `Propagate` again from its start frame,
yielding only the frames it has not yielded yet: no frame twice, none skipped, and the masks those
of an uninterrupted run (the frames before are tracked again, not sent, so SAM 2's memory of them
is rebuilt). A prompt added after an earlier `Propagate` (a correction) is replayed before any
propagation, so after a reopen it acts as if sent at once with the others.

`SessionLog` is the transport-free bookkeeping; `VideoSession` drives it with the blocking client,
`AsyncVideoSession` with the asyncio one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Optional

import grpc

from labelgate.client.errors import LabelgateClientError
from labelgate.client.image_ids import digest
from labelgate.client.tracking import (
    ObjectPrompt,
    Prompts,
    TrackedFrame,
    VideoLike,
    add_prompts_requests,
    frame_from_pb,
    prompts_for,
    open_video_request,
    propagate_request,
)
from labelgate.v1 import labelgate_pb2 as pb

# NOT_FOUND: the server does not know the session (restarted, expired, closed); UNAVAILABLE: the
# server is gone. Other codes are the caller's to fix and are raised.
LOST_CODES = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE})
# Reopens in a row without a frame or a call getting through before the error is raised.
MAX_REOPENS_WITHOUT_PROGRESS = 2


def video_key(request: pb.OpenVideoRequest) -> bytes:
    """What a fleet routes a video by: a digest of its content (the file, or every frame's bytes)."""
    if request.WhichOneof("source") == "video":
        return digest(request.video)
    return digest(b"".join(digest(frame.data or frame.image_id.encode()) for frame in request.frames.frames))


def track_on(clients: Sequence, video: VideoLike | pb.OpenVideoRequest, prompts: Prompts, *, direction: str = "forward",
             start_frame: Optional[int] = None, max_frames: int = 0, formats: Iterable[str] = ("coco_rle",),
             model: str = "", timeout: Optional[float] = None) -> Iterator[TrackedFrame]:
    """`Client.track` over `clients` (see `_SessionBase`); the session is closed when the iterator ends."""
    with VideoSession(clients, video, model=model, timeout=timeout, stream_timeout=timeout) as session:
        session.add_prompts(prompts_for(prompts, session.response))
        yield from session.propagate(direction, start_frame, max_frames, formats)


async def track_on_async(clients: Sequence, video: VideoLike | pb.OpenVideoRequest, prompts: Prompts, *,
                         direction: str = "forward", start_frame: Optional[int] = None, max_frames: int = 0,
                         formats: Iterable[str] = ("coco_rle",), model: str = "",
                         timeout: Optional[float] = None) -> AsyncIterator[TrackedFrame]:
    async with AsyncVideoSession(clients, video, model=model, timeout=timeout, stream_timeout=timeout) as session:
        await session.add_prompts(prompts_for(prompts, session.response))
        async for frame in session.propagate(direction, start_frame, max_frames, formats):
            yield frame


class SessionLost(LabelgateClientError):
    """A `Propagate` stream that ended before its last frame: the session was closed under it."""


def expected_frames(start: int, direction: str, max_frames: int, frame_count: int) -> list[int]:
    """The frames a Propagate sends, in order (see PropagateRequest in the proto)."""
    limit = max_frames if max_frames > 0 else frame_count
    forward = list(range(start, min(frame_count, start + limit)))
    backward = list(range(start, max(-1, start - limit), -1))
    return {"forward": forward, "backward": backward, "both": forward + backward[1:]}[direction]


class SessionLog:
    """What a session was told, to tell a new one the same: the OpenVideo request, every AddPrompts
    in order, which frames hold prompts and which changed since the last Propagate."""

    def __init__(self, open_request: pb.OpenVideoRequest):
        self.open_request = open_request
        self.prompt_requests: list[pb.AddPromptsRequest] = []
        self.prompted_frames: set[int] = set()
        self.changed_frames: set[int] = set()
        self.object_ids: list[int] = []  # in the order first prompted, as the server lists them
        self.reopens = 0
        self._without_progress = 0

    def record_prompts(self, request: pb.AddPromptsRequest) -> None:
        self.prompt_requests.append(request)
        self.prompted_frames.add(request.frame_index)
        self.changed_frames.add(request.frame_index)
        self.object_ids += [obj.object_id for obj in request.objects if obj.object_id not in self.object_ids]
        self.progressed()

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
        if unknown:
            raise ValueError(f"unknown object ids {unknown}: this session's objects are {self.object_ids}")

    def progressed(self) -> None:
        self._without_progress = 0

    def may_reopen(self, error: LabelgateClientError) -> bool:
        """Whether `error` lost the session and another reopen is allowed (counts it)."""
        if error.code not in LOST_CODES or self._without_progress >= MAX_REOPENS_WITHOUT_PROGRESS:
            return False
        self._without_progress += 1
        self.reopens += 1
        return True


def _with_session(request, session_id: str):
    copy = type(request)()
    copy.CopyFrom(request)
    copy.session_id = session_id
    return copy


def _short_stream(yielded: int, expected: int) -> SessionLost:
    return SessionLost(grpc.StatusCode.NOT_FOUND,
                       f"the stream ended after {yielded} of {expected} frames: the session was closed", "Propagate")


class _Opened:
    """What OpenVideo answered, and on which client."""

    def __init__(self, client, response: pb.OpenVideoResponse):
        self.client, self.response = client, response
        self.shape = (response.height, response.width)


class _SessionBase:
    def __init__(self, clients: Sequence, video: VideoLike | pb.OpenVideoRequest, *, model: str = "",
                 timeout: Optional[float] = None, stream_timeout: Optional[float] = None):
        """`clients`: where the session may live, in order of preference (one for a plain client; an
        AffinityClient's replicas ranked for this video). `timeout`: seconds for each unary call,
        retries included; `stream_timeout`: for each Propagate stream (None = no deadline)."""
        if not clients:
            raise ValueError("a video session needs at least one client")
        self.clients = list(clients)
        request = video if isinstance(video, pb.OpenVideoRequest) else open_video_request(video, model)
        self.log = SessionLog(request)
        self.timeout, self.stream_timeout = timeout, stream_timeout
        self._opened: Optional[_Opened] = None

    @property
    def response(self) -> pb.OpenVideoResponse | None:
        """What OpenVideo answered (None until opened)."""
        return self._opened.response if self._opened else None

    @property
    def session_id(self) -> str:
        return self._opened.response.session_id if self._opened else ""

    @property
    def client(self):
        """The client of the replica holding the session now."""
        return self._opened.client if self._opened else None

    @property
    def frame_count(self) -> int:
        return self._opened.response.frame_count if self._opened else 0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return (self._opened.response.width, self._opened.response.height) if self._opened else (0, 0)

    @property
    def timestamps(self) -> list[float]:
        return list(self._opened.response.timestamps) if self._opened else []

    @property
    def reopens(self) -> int:
        """Times the session was lost and opened again."""
        return self.log.reopens

    def _reopen_order(self) -> list:
        """The replica that held the session first (if it answers), then the others in order."""
        current = [self._opened.client] if self._opened else []
        return current + [client for client in self.clients if client not in current]

    def _require_open(self) -> _Opened:
        if self._opened is None:
            raise ValueError("the video session is closed: open it first (or use it in a `with` block)")
        return self._opened

    def _propagation(self, direction: str, start_frame: Optional[int], max_frames: int, formats, object_ids):
        self.log.check_objects(object_ids)
        start = self.log.start_frame(start_frame)
        request = propagate_request("", direction, start, max_frames, formats)
        request.object_ids.extend(object_ids)
        expected = len(expected_frames(start, direction, max_frames, self.frame_count))
        self.log.changed_frames.clear()
        return request, expected


class VideoSession(_SessionBase):
    """A tracking session through blocking clients; see the module docstring.

        with client.open_video("clip.mp4") as session:
            session.add_prompts([ObjectPrompt(1, frame=0, box=(10, 20, 60, 80))])
            for frame in session.propagate():
                ...
    """

    def open(self) -> "VideoSession":
        self._open(self.clients)
        return self

    def add_prompts(self, prompts: Iterable[ObjectPrompt]) -> list[TrackedFrame]:
        """Adds or corrects prompts; each prompted frame's masks (of every object), in frame order."""
        return [self._add_prompts(request) for request in add_prompts_requests("", prompts)]

    def propagate(self, direction: str = "forward", start_frame: Optional[int] = None, max_frames: int = 0,
                  formats: Iterable[str] = ("coco_rle",), object_ids: Sequence[int] = ()) -> Iterator[TrackedFrame]:
        """Each tracked frame as the server computes it; see `PropagateRequest` for the arguments
        (`start_frame` None = where the prompts changed). Closing the iterator stops the server's work."""
        request, expected = self._propagation(direction, start_frame, max_frames, formats, object_ids)
        yielded: set[int] = set()
        while True:
            opened = self._require_open()
            stream = opened.client._stub.Propagate(_with_session(request, opened.response.session_id),
                                                   timeout=self.stream_timeout, metadata=opened.client._metadata)
            try:
                for message in stream:
                    if message.frame_index not in yielded:
                        yielded.add(message.frame_index)
                        self.log.progressed()
                        yield frame_from_pb(message, opened.shape)
                if len(yielded) >= expected:
                    return
                error = _short_stream(len(yielded), expected)
            except grpc.RpcError as rpc_error:
                error = LabelgateClientError.from_rpc_error(rpc_error, "Propagate")
            finally:
                stream.cancel()  # an iterator closed early stops the server's work
            self._reopen_or_raise(error)

    def close(self) -> int:
        """Frees the session on its server; the tracker's runs there (0 if it was already gone)."""
        opened, self._opened = self._opened, None
        if opened is None:
            return 0
        try:
            request = pb.CloseVideoRequest(session_id=opened.response.session_id)
            return opened.client._invoke("CloseVideo", request, opened.client._attempts(self.timeout)).frames_tracked
        except LabelgateClientError:
            return 0  # expired or gone with its server: nothing left to free

    def __enter__(self) -> "VideoSession":
        return self if self._opened else self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- steps ---------------------------------------------------------------------------------

    def _open(self, candidates: list) -> None:
        for index, client in enumerate(candidates):
            try:
                response = client._invoke("OpenVideo", self.log.open_request, client._attempts(self.timeout))
            except LabelgateClientError as error:
                if error.code == grpc.StatusCode.UNAVAILABLE and index + 1 < len(candidates):
                    continue
                raise
            self._opened = _Opened(client, response)
            return

    def _add_prompts(self, request: pb.AddPromptsRequest) -> TrackedFrame:
        while True:
            opened = self._require_open()
            try:
                response = opened.client._invoke("AddPrompts", _with_session(request, opened.response.session_id),
                                                 opened.client._attempts(self.timeout))
            except LabelgateClientError as error:
                self._reopen_or_raise(error)
                continue
            self.log.record_prompts(request)
            return frame_from_pb(response.frame, opened.shape)

    def _reopen_or_raise(self, error: LabelgateClientError) -> None:
        if not self.log.may_reopen(error):
            raise error
        self._open(self._reopen_order())
        opened = self._opened
        for request in self.log.prompt_requests:
            opened.client._invoke("AddPrompts", _with_session(request, opened.response.session_id),
                                  opened.client._attempts(self.timeout))


class AsyncVideoSession(_SessionBase):
    """`VideoSession` for the AsyncClient: awaited calls, and `propagate` an async iterator."""

    async def open(self) -> "AsyncVideoSession":
        await self._open(self.clients)
        return self

    async def add_prompts(self, prompts: Iterable[ObjectPrompt]) -> list[TrackedFrame]:
        return [await self._add_prompts(request) for request in add_prompts_requests("", prompts)]

    async def propagate(self, direction: str = "forward", start_frame: Optional[int] = None, max_frames: int = 0,
                        formats: Iterable[str] = ("coco_rle",),
                        object_ids: Sequence[int] = ()) -> AsyncIterator[TrackedFrame]:
        request, expected = self._propagation(direction, start_frame, max_frames, formats, object_ids)
        yielded: set[int] = set()
        while True:
            opened = self._require_open()
            stream = opened.client._stub.Propagate(_with_session(request, opened.response.session_id),
                                                   timeout=self.stream_timeout, metadata=opened.client._metadata)
            try:
                async for message in stream:
                    if message.frame_index not in yielded:
                        yielded.add(message.frame_index)
                        self.log.progressed()
                        yield frame_from_pb(message, opened.shape)
                if len(yielded) >= expected:
                    return
                error = _short_stream(len(yielded), expected)
            except grpc.RpcError as rpc_error:
                error = LabelgateClientError.from_rpc_error(rpc_error, "Propagate")
            finally:
                stream.cancel()
            await self._reopen_or_raise(error)

    async def close(self) -> int:
        opened, self._opened = self._opened, None
        if opened is None:
            return 0
        try:
            request = pb.CloseVideoRequest(session_id=opened.response.session_id)
            return (await opened.client._invoke("CloseVideo", request, opened.client._attempts(self.timeout))).frames_tracked
        except LabelgateClientError:
            return 0

    async def __aenter__(self) -> "AsyncVideoSession":
        return self if self._opened else await self.open()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def _open(self, candidates: list) -> None:
        for index, client in enumerate(candidates):
            try:
                response = await client._invoke("OpenVideo", self.log.open_request, client._attempts(self.timeout))
            except LabelgateClientError as error:
                if error.code == grpc.StatusCode.UNAVAILABLE and index + 1 < len(candidates):
                    continue
                raise
            self._opened = _Opened(client, response)
            return

    async def _add_prompts(self, request: pb.AddPromptsRequest) -> TrackedFrame:
        while True:
            opened = self._require_open()
            try:
                response = await opened.client._invoke("AddPrompts", _with_session(request, opened.response.session_id),
                                                       opened.client._attempts(self.timeout))
            except LabelgateClientError as error:
                await self._reopen_or_raise(error)
                continue
            self.log.record_prompts(request)
            return frame_from_pb(response.frame, opened.shape)

    async def _reopen_or_raise(self, error: LabelgateClientError) -> None:
        if not self.log.may_reopen(error):
            raise error
        await self._open(self._reopen_order())
        opened = self._opened
        for request in self.log.prompt_requests:
            await opened.client._invoke("AddPrompts", _with_session(request, opened.response.session_id),
                                        opened.client._attempts(self.timeout))
