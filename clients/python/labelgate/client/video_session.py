"""A video session that outlives the server-side one it stands for.

A server keeps a tracking session in its memory only: a restart, a scale-down, the idle TTL or a
`CloseVideo` from elsewhere loses it, and its next call answers NOT_FOUND (a server gone answers
UNAVAILABLE; one closed mid-`Propagate` ends the stream early). `VideoSession` then reopens the
video (on the same replica if it answers, else on the next of `clients`), with the frames appended
since, replays every `AddPrompts` it sent, in order, tracks again (without yielding) the frames
that earlier completed forward `Propagate` calls tracked, so SAM 2's memory of them is rebuilt, and
starts the interrupted call again: a `Propagate` from its start frame, yielding only the frames it
has not yielded yet. No frame twice, none skipped, and the masks those of an uninterrupted run
(a `stream` session tracked step by step is tracked as one clip: test_video.py checks they are
equal). A prompt added after an earlier `Propagate` (a correction) is replayed before any
propagation, so after a reopen it acts as if sent at once with the others.

Text prompts (`add_text`) are replayed as text, not as the masks they produced: the server answers
SAM 2's output on that frame, not the mask it prompted with (the prompt mask goes through SAM 2's
1024 x 1024 resize and back), so only the text request gives the same prompt again. The same request
on the same weights finds the same instances and numbers them alike (from the session's largest id,
which the replayed prompts before it rebuild); the replay checks the ids and raises
`SessionLost` if a replica found others.

Appended frames with `release_old_frames`: an exact replay needs every frame from the first
prompted one on (each frame's memory is built on the frames before it), which is what releasing is
meant not to keep. So the log keeps what the server keeps (the prompted frames and the last
`keep_frames`, the server's --video-window by default) and a session reopened after a release is
opened on those frames alone, numbered anew on the server (the session maps its own frame numbers
to the server's); its prompts are replayed and the kept frames tracked again. Its masks then
follow the object from the kept frames' memory but are not bit-identical to an uninterrupted run;
a prompt or a Propagate on a released frame is a ValueError, as it is INVALID_ARGUMENT on the server.

`SessionLog` (video_log) is the transport-free bookkeeping; `VideoSession` drives it with the blocking client,
`AsyncVideoSession` with the asyncio one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Optional

import grpc

from labelgate.client.errors import LabelgateClientError
from labelgate.client.image_ids import digest
from labelgate.client.images import ImageLike, encode_image
from labelgate.client.tracking import (
    ObjectPrompt,
    Prompts,
    TextPrompt,
    TextTracks,
    TrackedFrame,
    VideoLike,
    add_prompts_requests,
    add_text_request,
    found_from_pb,
    frame_from_pb,
    open_video_request,
    prompts_for,
    propagate_request,
    text_prompt,
)
from labelgate.client.video_log import (
    DEFAULT_KEEP_FRAMES,
    LOST_CODES,
    MAX_REOPENS_WITHOUT_PROGRESS,
    SessionLog,
    SessionLost,
    expected_frames,
)
from labelgate.v1 import labelgate_pb2 as pb

__all__ = [
    "DEFAULT_KEEP_FRAMES",
    "LOST_CODES",
    "MAX_REOPENS_WITHOUT_PROGRESS",
    "AsyncVideoSession",
    "SessionLog",
    "SessionLost",
    "VideoSession",
    "expected_frames",
    "track_on",
    "track_on_async",
    "video_key",
]


def video_key(request: pb.OpenVideoRequest) -> bytes:
    """What a fleet routes a video by: a digest of its content (the file, or every frame's bytes;
    for a `stream` session, the frames it was opened with)."""
    if request.WhichOneof("source") == "video":
        return digest(request.video)
    return digest(b"".join(digest(frame.data or frame.image_id.encode()) for frame in request.frames.frames))


def track_on(clients: Sequence, video: VideoLike | pb.OpenVideoRequest, prompts: Prompts = (), *,
             direction: str = "forward", start_frame: Optional[int] = None, max_frames: int = 0,
             formats: Iterable[str] = ("coco_rle",), model: str = "", timeout: Optional[float] = None,
             text: str | TextPrompt = "", text_frame: int = 0, text_model: str = "",
             **text_settings) -> Iterator[TrackedFrame]:
    """`Client.track` over `clients` (see `_SessionBase`); the session is closed when the iterator ends."""
    text = text_prompt(text, text_frame, text_model, **text_settings)
    with VideoSession(clients, video, model=model, timeout=timeout, stream_timeout=timeout) as session:
        session.add_prompts(prompts_for(prompts, session.response))
        if text is not None:
            _check_found(session.add_text_prompt(text), session.log)
        yield from session.propagate(direction, start_frame, max_frames, formats)


async def track_on_async(clients: Sequence, video: VideoLike | pb.OpenVideoRequest, prompts: Prompts = (), *,
                         direction: str = "forward", start_frame: Optional[int] = None, max_frames: int = 0,
                         formats: Iterable[str] = ("coco_rle",), model: str = "", timeout: Optional[float] = None,
                         text: str | TextPrompt = "", text_frame: int = 0, text_model: str = "",
                         **text_settings) -> AsyncIterator[TrackedFrame]:
    text = text_prompt(text, text_frame, text_model, **text_settings)
    async with AsyncVideoSession(clients, video, model=model, timeout=timeout, stream_timeout=timeout) as session:
        await session.add_prompts(prompts_for(prompts, session.response))
        if text is not None:
            _check_found(await session.add_text_prompt(text), session.log)
        async for frame in session.propagate(direction, start_frame, max_frames, formats):
            yield frame


def _check_found(added: TextTracks, log: "SessionLog") -> None:
    if not log.object_ids:
        raise ValueError(f"the text found nothing on frame {added.frame.frame_index} and nothing else was prompted: "
                         "lower box_threshold / text_threshold, try other words, or prompt with boxes or clicks")


def _with_session(request, session_id: str):
    copy = type(request)()
    copy.CopyFrom(request)
    copy.session_id = session_id
    return copy


def _short_stream(yielded: int, expected: int) -> SessionLost:
    return SessionLost(grpc.StatusCode.NOT_FOUND,
                       f"the stream ended after {yielded} of {expected} frames: the session was closed", "Propagate")


def _unary(client, method: str, request, timeout: Optional[float]):
    """One unary call through the client's retries and metadata (awaitable for an AsyncClient)."""
    return client._invoke(method, request, client._attempts(timeout))


def _stream(client, request: pb.PropagateRequest, timeout: Optional[float]):
    return client._stub.Propagate(request, timeout=timeout, metadata=client._metadata)


class _Opened:
    """What OpenVideo answered, and on which client."""

    def __init__(self, client, response: pb.OpenVideoResponse):
        self.client, self.response = client, response
        self.shape = (response.height, response.width) if response.width else None  # unknown for an attached session


class _Propagation:
    """One `propagate` call, in the caller's frame numbers, across the sessions it may take."""

    def __init__(self, log: SessionLog, direction: str, start: int, max_frames: int, formats, object_ids):
        self.log, self.direction, self.start, self.max_frames = log, direction, start, max_frames
        self.template = propagate_request("", direction, None, max_frames, formats)
        self.template.object_ids.extend(object_ids)
        self.yielded: set[int] = set()

    def request(self, session_id: str) -> pb.PropagateRequest:
        request = _with_session(self.template, session_id)
        request.start_frame = self.log.to_server(self.start)
        return request

    def expected(self) -> list[int]:
        server = expected_frames(self.log.to_server(self.start), self.direction, self.max_frames, self.log.server_frame_count)
        return [self.log.to_client(frame) for frame in server]

    def first_time(self, frame: TrackedFrame) -> bool:
        if frame.frame_index in self.yielded:
            return False
        self.yielded.add(frame.frame_index)
        self.log.progressed()
        return True

    def finished(self) -> Optional[SessionLost]:
        """None when every expected frame came (recorded as tracked), else the error to reopen on."""
        expected = self.expected()
        if set(expected) <= self.yielded:
            self.log.record_tracked(expected, self.direction)
            return None
        return _short_stream(len(self.yielded), len(expected))


class _SessionBase:
    def __init__(self, clients: Sequence, video: VideoLike | pb.OpenVideoRequest, *, model: str = "",
                 stream: bool = False, timeout: Optional[float] = None, stream_timeout: Optional[float] = None,
                 keep_frames: int = DEFAULT_KEEP_FRAMES):
        """`clients`: where the session may live, in order of preference (one for a plain client; an
        AffinityClient's replicas ranked for this video). `stream`: frames will be appended (see
        `append_frames`). `timeout`: seconds for each unary call, retries included; `stream_timeout`:
        for each Propagate stream (None = no deadline). `keep_frames`: how many of the last frames
        the log keeps after `append_frames(release_old_frames=True)` (the server's --video-window)."""
        if not clients:
            raise ValueError("a video session needs at least one client")
        self.clients = list(clients)
        request = video if isinstance(video, pb.OpenVideoRequest) else open_video_request(video, model, stream)
        self.log = SessionLog(request, keep_frames)
        self.timeout, self.stream_timeout = timeout, stream_timeout
        self._opened: Optional[_Opened] = None

    @classmethod
    def attach(cls, client, session_id: str, *, width: int = 0, height: int = 0, frame_count: int = 0,
               timeout: Optional[float] = None, stream_timeout: Optional[float] = None):
        """A session opened earlier by id (e.g. a state CVAT keeps for a stateless function), on
        `client`. It has no log to replay: a lost one raises NOT_FOUND."""
        session = cls([client], pb.OpenVideoRequest(), timeout=timeout, stream_timeout=stream_timeout)
        session.log = SessionLog(None)
        session.log.frame_count = frame_count
        session._opened = _Opened(client, pb.OpenVideoResponse(session_id=session_id, frame_count=frame_count,
                                                               width=width, height=height))
        return session

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
        """The session's frames, appended ones included (0 until opened)."""
        return self.log.frame_count if self._opened else 0

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

    def _opened_on(self, client, response: pb.OpenVideoResponse) -> None:
        if self.log.frames is None and self.log.frame_count == 0:
            self.log.frame_count = response.frame_count  # a video file: known once decoded
        self._opened = _Opened(client, response)

    def _on_server(self, request, opened: _Opened):
        """`request` for the session now open: its session id, and its frame in the server's numbers."""
        copy = _with_session(request, opened.response.session_id)
        copy.frame_index = self.log.to_server(request.frame_index)
        return copy

    def _tracked(self, message: pb.TrackedFrame, opened: _Opened) -> TrackedFrame:
        frame = frame_from_pb(message, opened.shape)
        index = self.log.to_client(message.frame_index)
        return frame if index == frame.frame_index else TrackedFrame(index, frame.timestamp, frame.masks)

    def _propagation(self, direction: str, start_frame: Optional[int], max_frames: int, formats, object_ids):
        self.log.check_objects(object_ids)
        propagation = _Propagation(self.log, direction, self.log.start_frame(start_frame), max_frames, formats, object_ids)
        self.log.changed_frames.clear()
        return propagation

    def _append_request(self, frames: Sequence[ImageLike], release_old_frames: bool):
        if self.log.open_request is not None and self.log.frames is None:
            raise ValueError("append_frames: this session was opened from a video file; open one from frames "
                             "(a list of images, with stream=True) to append to it")
        if not frames:
            raise ValueError("append_frames: no frames to append")
        encoded = [encode_image(frame) for frame in frames]
        request = pb.AppendFramesRequest(release_old_frames=release_old_frames)
        request.frames.frames.extend(pb.Image(data=data) for data in encoded)
        return request, encoded


class VideoSession(_SessionBase):
    """A tracking session through blocking clients; see the module docstring.

        with client.open_video("clip.mp4") as session:
            session.add_prompts([ObjectPrompt(1, frame=0, box=(10, 20, 60, 80))])
            for frame in session.propagate():
                ...
    """

    def open(self) -> "VideoSession":
        self._open(self.clients, self.log.open_request)
        return self

    def add_prompts(self, prompts: Iterable[ObjectPrompt]) -> list[TrackedFrame]:
        """Adds or corrects prompts; each prompted frame's masks (of every object), in frame order."""
        return [self._add(request)[1] for request in add_prompts_requests("", prompts)]

    def add_text(self, frame: int, text: str, *, model: str = "", detector_model: str = "",
                 box_threshold: float = 0.0, text_threshold: float = 0.0, max_objects: int = 0,
                 formats: Iterable[str] = ("coco_rle",)) -> TextTracks:
        """Text to tracks: every instance of `text` ("car . person .") on `frame` becomes a new object,
        numbered on from the session's largest id, found as `Client.segment(text=...)` finds it (a
        concept model named in `model`, else the detector `detector_model` with SAM 2). Thresholds
        as in segment (0 = the server's defaults); at most `max_objects` (best scores; 0 = all).
        Returns the objects added (`found`) and the frame's masks of every object."""
        prompt = TextPrompt(text, frame, model, detector_model, box_threshold, text_threshold, max_objects)
        return self.add_text_prompt(prompt, formats)

    def add_text_prompt(self, prompt: TextPrompt, formats: Iterable[str] = ("coco_rle",)) -> TextTracks:
        response, frame = self._add(add_text_request(prompt.frame, prompt, formats))
        return TextTracks(found_from_pb(response), frame)

    def append_frames(self, frames: Sequence[ImageLike], *, release_old_frames: bool = False) -> int:
        """Adds frames after the last one (a session opened from frames; open it with `stream=True` to
        track them as one long clip) and answers the session's frame count. `release_old_frames`: the
        server (and this session's log) keep only the prompted frames and the last few, for bounded
        memory over a long stream; see the module docstring for what a reopen then replays."""
        request, encoded = self._append_request(frames, release_old_frames)
        while True:
            opened = self._require_open()
            try:
                response = _unary(opened.client, "AppendFrames", _with_session(request, opened.response.session_id),
                                  self.timeout)
            except LabelgateClientError as error:
                self._reopen_or_raise(error)
                continue
            self.log.record_append(encoded, release_old_frames, response.frame_count)
            return self.log.frame_count

    def propagate(self, direction: str = "forward", start_frame: Optional[int] = None, max_frames: int = 0,
                  formats: Iterable[str] = ("coco_rle",), object_ids: Sequence[int] = ()) -> Iterator[TrackedFrame]:
        """Each tracked frame as the server computes it; see `PropagateRequest` for the arguments
        (`start_frame` None = where the prompts changed). Closing the iterator stops the server's work."""
        propagation = self._propagation(direction, start_frame, max_frames, formats, object_ids)
        while True:
            opened = self._require_open()
            stream = _stream(opened.client, propagation.request(opened.response.session_id), self.stream_timeout)
            try:
                for message in stream:
                    frame = self._tracked(message, opened)
                    if propagation.first_time(frame):
                        yield frame
                error = propagation.finished()
                if error is None:
                    return
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
            return _unary(opened.client, "CloseVideo", request, self.timeout).frames_tracked
        except LabelgateClientError:
            return 0  # expired or gone with its server: nothing left to free

    def __enter__(self) -> "VideoSession":
        return self if self._opened else self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- steps ---------------------------------------------------------------------------------

    def _open(self, candidates: list, request: pb.OpenVideoRequest) -> None:
        for index, client in enumerate(candidates):
            try:
                response = _unary(client, "OpenVideo", request, self.timeout)
            except LabelgateClientError as error:
                if error.code == grpc.StatusCode.UNAVAILABLE and index + 1 < len(candidates):
                    continue
                raise
            self._opened_on(client, response)
            return

    def _add(self, request: pb.AddPromptsRequest) -> tuple[pb.AddPromptsResponse, TrackedFrame]:
        while True:
            opened = self._require_open()
            try:
                response = _unary(opened.client, "AddPrompts", self._on_server(request, opened), self.timeout)
            except LabelgateClientError as error:
                self._reopen_or_raise(error)
                continue
            self.log.record_prompts(request, [found.object_id for found in response.found])
            return response, self._tracked(response.frame, opened)

    def _reopen_or_raise(self, error: LabelgateClientError) -> None:
        if not self.log.may_reopen(error):
            raise error
        self._open(self._reopen_order(), self.log.reopen_request())
        opened = self._opened
        for index, request in enumerate(self.log.prompt_requests):
            self.log.check_replayed(index, _unary(opened.client, "AddPrompts", self._on_server(request, opened),
                                                  self.timeout))
        rebuild = self.log.rebuild_request()
        if rebuild is not None:
            stream = _stream(opened.client, _with_session(rebuild, opened.response.session_id), self.stream_timeout)
            try:
                for _ in stream:
                    pass
            except grpc.RpcError as rpc_error:
                raise LabelgateClientError.from_rpc_error(rpc_error, "Propagate") from None


class AsyncVideoSession(_SessionBase):
    """`VideoSession` for the AsyncClient: awaited calls, and `propagate` an async iterator."""

    async def open(self) -> "AsyncVideoSession":
        await self._open(self.clients, self.log.open_request)
        return self

    async def add_prompts(self, prompts: Iterable[ObjectPrompt]) -> list[TrackedFrame]:
        return [(await self._add(request))[1] for request in add_prompts_requests("", prompts)]

    async def add_text(self, frame: int, text: str, *, model: str = "", detector_model: str = "",
                       box_threshold: float = 0.0, text_threshold: float = 0.0, max_objects: int = 0,
                       formats: Iterable[str] = ("coco_rle",)) -> TextTracks:
        prompt = TextPrompt(text, frame, model, detector_model, box_threshold, text_threshold, max_objects)
        return await self.add_text_prompt(prompt, formats)

    async def add_text_prompt(self, prompt: TextPrompt, formats: Iterable[str] = ("coco_rle",)) -> TextTracks:
        response, frame = await self._add(add_text_request(prompt.frame, prompt, formats))
        return TextTracks(found_from_pb(response), frame)

    async def append_frames(self, frames: Sequence[ImageLike], *, release_old_frames: bool = False) -> int:
        request, encoded = self._append_request(frames, release_old_frames)
        while True:
            opened = self._require_open()
            try:
                response = await _unary(opened.client, "AppendFrames",
                                        _with_session(request, opened.response.session_id), self.timeout)
            except LabelgateClientError as error:
                await self._reopen_or_raise(error)
                continue
            self.log.record_append(encoded, release_old_frames, response.frame_count)
            return self.log.frame_count

    async def propagate(self, direction: str = "forward", start_frame: Optional[int] = None, max_frames: int = 0,
                        formats: Iterable[str] = ("coco_rle",),
                        object_ids: Sequence[int] = ()) -> AsyncIterator[TrackedFrame]:
        propagation = self._propagation(direction, start_frame, max_frames, formats, object_ids)
        while True:
            opened = self._require_open()
            stream = _stream(opened.client, propagation.request(opened.response.session_id), self.stream_timeout)
            try:
                async for message in stream:
                    frame = self._tracked(message, opened)
                    if propagation.first_time(frame):
                        yield frame
                error = propagation.finished()
                if error is None:
                    return
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
            return (await _unary(opened.client, "CloseVideo", request, self.timeout)).frames_tracked
        except LabelgateClientError:
            return 0

    async def __aenter__(self) -> "AsyncVideoSession":
        return self if self._opened else await self.open()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def _open(self, candidates: list, request: pb.OpenVideoRequest) -> None:
        for index, client in enumerate(candidates):
            try:
                response = await _unary(client, "OpenVideo", request, self.timeout)
            except LabelgateClientError as error:
                if error.code == grpc.StatusCode.UNAVAILABLE and index + 1 < len(candidates):
                    continue
                raise
            self._opened_on(client, response)
            return

    async def _add(self, request: pb.AddPromptsRequest) -> tuple[pb.AddPromptsResponse, TrackedFrame]:
        while True:
            opened = self._require_open()
            try:
                response = await _unary(opened.client, "AddPrompts", self._on_server(request, opened), self.timeout)
            except LabelgateClientError as error:
                await self._reopen_or_raise(error)
                continue
            self.log.record_prompts(request, [found.object_id for found in response.found])
            return response, self._tracked(response.frame, opened)

    async def _reopen_or_raise(self, error: LabelgateClientError) -> None:
        if not self.log.may_reopen(error):
            raise error
        await self._open(self._reopen_order(), self.log.reopen_request())
        opened = self._opened
        for index, request in enumerate(self.log.prompt_requests):
            self.log.check_replayed(index, await _unary(opened.client, "AddPrompts", self._on_server(request, opened),
                                                        self.timeout))
        rebuild = self.log.rebuild_request()
        if rebuild is not None:
            stream = _stream(opened.client, _with_session(rebuild, opened.response.session_id), self.stream_timeout)
            try:
                async for _ in stream:
                    pass
            except grpc.RpcError as rpc_error:
                raise LabelgateClientError.from_rpc_error(rpc_error, "Propagate") from None
