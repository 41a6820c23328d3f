"""Video tracking, transport-neutral: resolve the frames, open sessions on a `track_video` model,
check prompts against the clip, run the tracker off the event loop one frame at a time (so a caller
that goes away stops the work at the next frame), and encode the masks. A background sweep closes
the sessions idle past their TTL, so their memory is freed without waiting for a call."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import AsyncIterator

import cv2
import numpy as np

from labelgate.core.errors import InvalidInput, NotFound, NotReady
from labelgate.models.kinds import TRACK
from labelgate.models.video_tracking import FrameSource, TrackedFrame, TrackPrompt, VideoTrackingBackend
from labelgate.server.masks import encode_mask
from labelgate.server.queries import ImageRef
from labelgate.server.quoting import quoted
from labelgate.server.validation import check_box_shape, check_image_ref, check_model_name, checked_formats
from labelgate.server.video_frames import EncodedImageFrames, VideoFileFrames, released_message
from labelgate.server.video_queries import (
    BACKWARD,
    AppendedFrames,
    BOTH,
    FORWARD,
    EncodedFrame,
    EncodedObject,
    ObjectPromptQuery,
    OpenedVideo,
    PropagateQuery,
    VideoSource,
)
from labelgate.server.video_sessions import SessionLimits, VideoSession, VideoSessions
from labelgate.server.tracking_thread import TrackingThread
from labelgate.server.video_text import FoundObject, TextPrompt, objects_from_text

log = logging.getLogger(__name__)

MAX_SWEEP_PERIOD_S = 30.0


def sweep_period(ttl_s: float) -> float:
    """How often idle sessions are looked for: a session outlives its TTL by at most this."""
    return min(ttl_s / 4, MAX_SWEEP_PERIOD_S)


class VideoService:
    def __init__(self, service, limits: SessionLimits):
        """`service`: the LabelgateService, for its served models, received images and limits."""
        self.service, self.limits = service, limits
        self.sessions = VideoSessions(limits, metrics=service.metrics.video)
        self._sweeper: asyncio.Task | None = None
        self._shutting_down = False
        self._tracking = TrackingThread()

    def start(self) -> None:
        """Starts the sweep of expired sessions (on the running event loop)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(sweep_period(self.limits.ttl_s)), name="video-session-sweep")

    async def shut_down(self) -> None:
        """Stops the sweep and closes every session: a Propagate still streaming ends UNAVAILABLE at its next
        frame (the tracking state cannot outlive the process), and new sessions are refused."""
        self._shutting_down = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        self.sessions.close_all()
        self._tracking.close()

    async def _sweep(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                self.sessions.expire()
            except Exception:  # a sweep that died would leave every idle session's memory held
                log.exception("closing the expired video sessions failed; trying again in %g s", period)

    async def open(self, source: VideoSource, model: str, owner: str) -> OpenedVideo:
        self._refuse_if_shutting_down()
        check_model_name(model, "model")
        name, backend = self._tracker(model)
        frames = await asyncio.to_thread(self._frame_source, source)
        self._refuse_if_shutting_down()  # the sessions were closed while the frames were decoded
        tracking = backend.open_video(frames, self.limits.window, long_clip=source.stream)
        session = self.sessions.open(owner, name, frames, tracking)
        timestamps = tuple(frames.timestamp(i) for i in range(frames.num_frames)) if source.video else ()
        return OpenedVideo(session.id, frames.num_frames, frames.width, frames.height, timestamps, name)

    async def add_prompts(self, session_id: str, owner: str, frame_index: int, objects: tuple[ObjectPromptQuery, ...],
                          formats: tuple[str, ...], text: TextPrompt | None = None) -> tuple[EncodedFrame, list[FoundObject]]:
        """The frame's masks after the prompts, and the objects `text` added (see video_text)."""
        formats = checked_formats(formats)
        session = self.sessions.get(session_id, owner)
        async with session.lock:
            try:
                self._check_open(session)
                _check_frame(frame_index, session.frames, "frame_index")
                text = text if text is not None and text.text.strip() else None
                prompts = _checked_prompts(objects, frame_index, session.frames, self.service.limits.max_points,
                                           text is not None)
                found = []
                if text is not None:
                    first_id = max([*session.tracking.object_ids, *(obj.object_id for obj in objects), 0]) + 1
                    frame = await asyncio.to_thread(session.frames.frame, frame_index)
                    found = await objects_from_text(self.service, frame, frame_index, text, first_id)
                    prompts += [prompt for _, prompt in found]
                tracked = None
                for prompt in prompts:
                    tracked = await self._tracking.run(session.tracking.add_prompt, prompt)
                    session.changed_frames.add(frame_index)
                self._check_open(session)  # closed while the prompts ran: they are lost with it
                self.sessions.check_bytes(session)
                if tracked is None:  # text found nothing: the frame as it is
                    tracked = TrackedFrame(frame_index, [])
                encoded = await asyncio.to_thread(_encoded, tracked, session.frames, formats, ())
                return encoded, [added for added, _ in found]
            finally:
                if session.closed:  # closed during the call: its state is freed now that nothing uses it
                    session.free()

    async def propagate(self, session_id: str, owner: str, query: PropagateQuery) -> AsyncIterator[EncodedFrame]:
        formats = checked_formats(query.formats)
        if query.direction not in (FORWARD, BACKWARD, BOTH):
            raise InvalidInput(f"unknown direction {quoted(query.direction)}: choose forward, backward or both")
        session = self.sessions.get(session_id, owner)
        async with session.lock:
            try:
                self._check_open(session)
                start = self._start_frame(session, query)
                passes = {FORWARD: [False], BACKWARD: [True], BOTH: [False, True]}[query.direction]
                for reverse in passes:
                    _check_kept(session, frames_in_pass(session.frames.num_frames, start, reverse, query.max_frames), reverse)
                session.changed_frames.clear()
                for reverse in passes:
                    steps = session.tracking.propagate(start, reverse, query.max_frames)
                    try:
                        while not session.closed:
                            tracked, encoded = await self._tracking.run(_next_encoded, steps, session.frames, formats,
                                                                        query.object_ids)
                            if tracked is None:
                                break
                            session.last_used = self.sessions.clock()
                            self.sessions.check_bytes(session)
                            if reverse and len(passes) == 2 and tracked.frame_index == start:
                                continue  # sent by the forward pass
                            yield encoded
                    finally:
                        steps.close()
                    self._check_open(session)  # closed mid-stream: end with why, not as if the clip were done
            finally:
                if session.closed:
                    session.free()

    async def append_frames(self, session_id: str, owner: str, images: tuple[ImageRef, ...], release_old: bool) -> AppendedFrames:
        session = self.sessions.get(session_id, owner)
        async with session.lock:
            try:
                self._check_open(session)
                frames = session.frames
                if not isinstance(frames, EncodedImageFrames):
                    raise InvalidInput("this session was opened from a video file, whose frames are fixed: to append frames, "
                                       "open the session from frames (OpenVideo frames)")
                first = frames.num_frames
                data = [self._image_bytes(image, first + offset) for offset, image in enumerate(images)]
                self.sessions.check_room(session, sum(len(item) for item in data))
                await asyncio.to_thread(frames.append, data)
                if release_old:
                    last = range(max(0, frames.num_frames - self.limits.window), frames.num_frames)
                    frames.release(set(session.tracking.prompted_frames) | set(last))
                return AppendedFrames(frames.num_frames, session.tracking.nbytes)
            finally:
                if session.closed:
                    session.free()

    async def close(self, session_id: str, owner: str) -> int:
        session = self.sessions.get(session_id, owner)
        self.sessions.close(session)
        return session.tracking.frames_tracked

    # --- steps ------------------------------------------------------------------------------

    def _tracker(self, model: str) -> tuple[str, VideoTrackingBackend]:
        """The named model, or the first that declares `track_video` (a backend that cannot track, such
        as a Triton one, is refused by name as any model without the capability)."""
        service = self.service
        served = {name: runtime.backend for name, runtime in service.runtimes.items()
                  if TRACK in runtime.capabilities}

        def declares(name: str) -> bool:
            runtime = service.runtimes.get(name)
            return TRACK in (runtime.capabilities if runtime else service.loading.get(name, ()))

        name = model or next((name for name in service.order if declares(name)), "")
        return name, service._route(name, TRACK, served)

    def _frame_source(self, source: VideoSource) -> FrameSource:
        max_pixels = self.service.limits.max_image_pixels
        if source.video:
            return VideoFileFrames(source.video, max_pixels)
        if not source.frames:
            raise InvalidInput("OpenVideo: no video: send a video file in `video`, or the frames as images in `frames`")
        return EncodedImageFrames([self._image_bytes(image, index) for index, image in enumerate(source.frames)], max_pixels)

    def _image_bytes(self, image: ImageRef, index: int) -> bytes:
        check_image_ref(image, f"frame {index}")
        if image.data:
            return image.data
        stored = self.service.images.get(image.image_id)
        if stored is None:
            raise NotFound(f"frame {index}: unknown image_id {quoted(image.image_id)}: this server has not seen that image or has "
                           "evicted it; send the frame's bytes instead")
        return stored.data

    def _refuse_if_shutting_down(self) -> None:
        if self._shutting_down:
            raise NotReady("the server is shutting down: open the video on another replica, or once this one is back")

    def _check_open(self, session: VideoSession) -> None:
        if session.ended is not None:
            raise session.ended

    def _start_frame(self, session: VideoSession, query: PropagateQuery) -> int:
        objects = session.tracking.object_ids
        if not objects:
            raise InvalidInput("no object has prompts yet: send AddPrompts first, then Propagate")
        unknown = sorted(set(query.object_ids) - set(objects))
        if unknown:
            raise NotFound(f"unknown object ids {unknown}: this session's objects are {objects}")
        if query.start_frame is not None:
            _check_frame(query.start_frame, session.frames, "start_frame")
            return query.start_frame
        return min(session.changed_frames or session.tracking.prompted_frames)


def frames_in_pass(num_frames: int, start: int, reverse: bool, max_frames: int) -> range:
    """The frames one Propagate pass tracks, in order (`TrackingSession.propagate`'s contract)."""
    count = start + 1 if reverse else num_frames - start
    if max_frames > 0:
        count = min(count, max_frames)
    return range(start, start - count, -1) if reverse else range(start, start + count)


def _check_kept(session: VideoSession, frames: range, reverse: bool) -> None:
    """Refuses, before any frame is tracked, a pass that would reach a frame whose pixels were released."""
    released = next((index for index in frames if session.frames.released(index)), None)
    if released is not None:
        direction = "backward" if reverse else "forward"
        raise InvalidInput(f"Propagate {direction} from frame {frames[0]} would track a released frame: {released_message(session.frames, released)}; "
                           "start within the kept frames, or stop before it with max_frames")


def _check_frame(index: int, frames: FrameSource, field: str) -> None:
    if not 0 <= index < frames.num_frames:
        raise InvalidInput(f"{field} {index} is out of range: the video has {frames.num_frames} frames (0 to {frames.num_frames - 1})")
    if frames.released(index):
        frames.frame(index)  # raises, saying why and what is kept


def _checked_prompts(objects, frame_index: int, frames: FrameSource, max_points: int, with_text: bool) -> list[TrackPrompt]:
    if not objects and not with_text:
        raise InvalidInput("AddPrompts: no objects: send at least one ObjectPrompt with points, a box or a mask, or text")
    ids = [obj.object_id for obj in objects]
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"object ids repeat in one request {ids}: send each object once, with all its prompts")
    return [_checked_prompt(obj, frame_index, frames, max_points) for obj in objects]


def _checked_prompt(obj: ObjectPromptQuery, frame_index: int, frames: FrameSource, max_points: int) -> TrackPrompt:
    what = f"object {obj.object_id}"
    if obj.mask_png:
        if obj.points or obj.box is not None:
            raise InvalidInput(f"{what}: a mask goes alone: send either mask_png or points and a box")
        return TrackPrompt(frame_index, obj.object_id, np.zeros((0, 2), np.float32), np.zeros((0,), np.int32),
                           mask=_mask_from_png(obj.mask_png, frames, what))
    if not obj.points and obj.box is None:
        raise InvalidInput(f"{what}: no prompt: send points, a box, or mask_png")
    if len(obj.points) > max_points:
        raise InvalidInput(f"{what}: {len(obj.points)} points is over the limit of {max_points} (--max-points)")
    for index, point in enumerate(obj.points):
        if not (math.isfinite(point.x) and math.isfinite(point.y) and 0 <= point.x <= frames.width and 0 <= point.y <= frames.height):
            raise InvalidInput(f"{what}: point {index} ({point.x}, {point.y}) is outside the {frames.width} x {frames.height} frame")
    box = None
    if obj.box is not None:
        check_box_shape(obj.box, 0, f"{what}: box")
        if not (0 <= obj.box.x_min and 0 <= obj.box.y_min and obj.box.x_max <= frames.width and obj.box.y_max <= frames.height):
            raise InvalidInput(f"{what}: box {obj.box.as_tuple()} is outside the {frames.width} x {frames.height} frame")
        box = np.array(obj.box.as_tuple(), np.float32)
    points = np.array([(p.x, p.y) for p in obj.points], np.float32).reshape(-1, 2)
    labels = np.array([0 if p.negative else 1 for p in obj.points], np.int32)
    return TrackPrompt(frame_index, obj.object_id, points, labels, box)


def _mask_from_png(data: bytes, frames: FrameSource, what: str) -> np.ndarray:
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise InvalidInput(f"{what}: mask_png is not a PNG image")
    if mask.shape != (frames.height, frames.width):
        raise InvalidInput(f"{what}: mask_png is {mask.shape[1]}x{mask.shape[0]}, the frames are {frames.width}x{frames.height}")
    return mask > 0


def _next_encoded(steps, frames: FrameSource, formats: tuple[str, ...],
                  object_ids: tuple[int, ...]) -> tuple[TrackedFrame | None, EncodedFrame | None]:
    """The next frame of a pass and its encoded masks, in one call on the tracking thread."""
    tracked = next(steps, None)
    return tracked, None if tracked is None else _encoded(tracked, frames, formats, object_ids)


def _encoded(tracked: TrackedFrame, frames: FrameSource, formats: tuple[str, ...], object_ids: tuple[int, ...]) -> EncodedFrame:
    wanted = set(object_ids)
    objects = tuple(EncodedObject(obj.object_id, encode_mask(obj.mask, obj.score, formats))
                    for obj in tracked.objects if not wanted or obj.object_id in wanted)
    return EncodedFrame(tracked.frame_index, frames.timestamp(tracked.frame_index), objects)
