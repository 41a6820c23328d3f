"""Video sessions through a real in-process App and grpc.aio server, with a stand-in tracker (a
registered model kind) that pauses mid-stream when told: a session closed or a server stopping while
Propagate streams ends the stream with a status, idle sessions are swept without any call, and a
pass over released frames is refused before its first frame."""

from __future__ import annotations

import asyncio
import io
import threading

import grpc
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from labelgate.models import kinds
from labelgate.models.backend import ModelInfo
from labelgate.models.video_tracking import FrameSource, TrackedFrame, TrackedObject, TrackingSession, TrackPrompt, VideoTrackingBackend
from labelgate.server.app import App
from labelgate.server.settings import Settings
from labelgate.server.video_service import frames_in_pass
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc

HEIGHT, WIDTH = 8, 12
TRACKING_BYTES = 1000


class StandInTracking(TrackingSession):
    """Reads each frame it tracks (as SAM 2 does); after the first frame of a pass, waits for `go_on`."""

    def __init__(self, frames: FrameSource, go_on: threading.Event):
        self.frames, self.go_on = frames, go_on
        self.prompts: dict[int, int] = {}  # object id -> frame
        self.closed = False

    def add_prompt(self, prompt: TrackPrompt) -> TrackedFrame:
        self.frames.frame(prompt.frame_index)
        self.prompts[prompt.object_id] = prompt.frame_index
        return self._tracked(prompt.frame_index)

    def propagate(self, start_frame, reverse, max_frames):
        for step, index in enumerate(frames_in_pass(self.frames.num_frames, start_frame, reverse, max_frames)):
            if step == 1:
                self.go_on.wait(timeout=60)
            self.frames.frame(index)
            self.frames_tracked += 1
            yield self._tracked(index)

    def _tracked(self, index: int) -> TrackedFrame:
        mask = np.zeros((HEIGHT, WIDTH), bool)
        return TrackedFrame(index, [TrackedObject(obj, mask, 1.0) for obj in sorted(self.prompts)])

    @property
    def object_ids(self):
        return sorted(self.prompts)

    @property
    def prompted_frames(self):
        return sorted(set(self.prompts.values()))

    @property
    def nbytes(self):
        return 0 if self.closed else TRACKING_BYTES + self.frames.nbytes

    def close(self):
        self.closed = True


class StandInTracker(VideoTrackingBackend):
    def __init__(self, name: str):
        self.info = ModelInfo(name=name, kind="stand_in_tracker", version="v1", device="stand-in")
        self.go_on = threading.Event()
        self.sessions: list[StandInTracking] = []

    def open_video(self, frames, window, long_clip=False):
        self.sessions.append(StandInTracking(frames, self.go_on))
        return self.sessions[-1]


TRACKERS: dict[str, StandInTracker] = {}


def _load(spec, context):
    TRACKERS[spec.name] = StandInTracker(spec.name)
    return TRACKERS[spec.name]


kinds.register(kinds.ModelKind(name="stand_in_tracker", summary="a video tracker stand-in for tests",
                               capabilities=frozenset({kinds.TRACK}), load=_load))


def _png(value: int) -> pb.Image:
    buffer = io.BytesIO()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), value, np.uint8)).save(buffer, format="PNG")
    return pb.Image(data=buffer.getvalue())


class Running:
    def __init__(self, app: App, channel: grpc.aio.Channel, name: str):
        self.app, self.channel, self.name = app, channel, name
        self.stopped = False  # by the test
        self.stub = labelgate_pb2_grpc.LabelgateStub(channel)

    @property
    def tracker(self) -> StandInTracker:
        return TRACKERS[self.name]

    def gauge(self, name: str) -> float:
        return self.app.metrics.registry.get_sample_value(name)

    async def open_prompted(self, frames: int, stream: bool = False) -> str:
        opened = await self.stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=[_png(i) for i in range(frames)]),
                                                               stream=stream))
        await self.stub.AddPrompts(pb.AddPromptsRequest(session_id=opened.session_id, frame_index=0, objects=[
            pb.ObjectPrompt(object_id=1, points=[pb.Point(x=2, y=2)])]))
        return opened.session_id


_COUNT = iter(range(1_000_000))


@pytest_asyncio.fixture(loop_scope="function")
async def running(request):
    name = f"tracker{next(_COUNT)}"
    settings = {"grace_seconds": 30, **getattr(request, "param", {})}
    app = App(Settings(model=(f"{name}=stand_in_tracker:",), device="cpu", port=0, metrics_port=-1, warmup=False, **settings))
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    running = Running(app, channel, name)
    try:
        yield running
    finally:
        TRACKERS[name].go_on.set()
        await channel.close()
        if not running.stopped:
            await app.stop()


async def _until(condition, what: str) -> None:
    for _ in range(2000):  # 20 s at most
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {what}")


async def _received_then_status(stream, received: list) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        while (frame := await stream.read()) is not grpc.aio.EOF:
            received.append(frame.frame_index)
    return error.value


async def test_a_session_closed_mid_stream_ends_the_stream_not_found_not_ok(running):
    session = await running.open_prompted(5)
    stream = running.stub.Propagate(pb.PropagateRequest(session_id=session))
    received = [(await stream.read()).frame_index]
    await running.stub.CloseVideo(pb.CloseVideoRequest(session_id=session))
    running.tracker.go_on.set()
    error = await _received_then_status(stream, received)
    assert error.code() == grpc.StatusCode.NOT_FOUND and "closed (CloseVideo)" in error.details()
    assert received[0] == 0 and len(received) < 5
    assert running.tracker.sessions[0].closed  # freed once the stream let go of it


async def test_a_server_stopping_mid_stream_ends_the_stream_unavailable(running):
    session = await running.open_prompted(5)
    stream = running.stub.Propagate(pb.PropagateRequest(session_id=session))
    received = [(await stream.read()).frame_index]
    stopping = asyncio.create_task(running.app.stop())
    running.stopped = True
    await _until(lambda: running.app.servicer.video.sessions.sessions == {}, "closed the sessions")
    running.tracker.go_on.set()
    error = await _received_then_status(stream, received)
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in error.details()
    assert len(received) < 5
    await stopping


@pytest.mark.parametrize("running", [{"video_session_ttl_s": 0.2}], indirect=True)
async def test_an_idle_session_is_closed_and_freed_past_its_ttl_without_any_call(running):
    await running.open_prompted(3)
    assert running.gauge("labelgate_video_sessions") == 1
    assert running.gauge("labelgate_video_session_bytes") >= TRACKING_BYTES
    await _until(lambda: running.tracker.sessions[0].closed, "swept the idle session")
    assert running.app.servicer.video.sessions.sessions == {}
    assert running.gauge("labelgate_video_sessions") == 0 and running.gauge("labelgate_video_session_bytes") == 0


@pytest.mark.parametrize("running", [{"video_window": 2}], indirect=True)
async def test_a_pass_over_released_frames_is_refused_before_its_first_frame(running):
    running.tracker.go_on.set()
    session = await running.open_prompted(1, stream=True)
    for value in range(1, 5):
        await running.stub.AppendFrames(pb.AppendFramesRequest(session_id=session, frames=pb.VideoFrames(frames=[_png(value)]),
                                                               release_old_frames=True))
    # Kept: the prompted frame 0 and the last --video-window 2 frames, 3 and 4.
    received = []
    error = await _received_then_status(
        running.stub.Propagate(pb.PropagateRequest(session_id=session, start_frame=3, direction=pb.PROPAGATE_BACKWARD)), received)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and received == []
    assert "frame 2 was released" in error.details() and "frames 0, 3-4" in error.details()
    both = pb.PropagateRequest(session_id=session, start_frame=3, direction=pb.PROPAGATE_BOTH, max_frames=2)
    assert (await _received_then_status(running.stub.Propagate(both), received)).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert received == []
    within = pb.PropagateRequest(session_id=session, start_frame=3, direction=pb.PROPAGATE_BOTH, max_frames=1)
    assert [frame.frame_index async for frame in running.stub.Propagate(within)] == [3]
    forward = pb.PropagateRequest(session_id=session, start_frame=3)
    assert [frame.frame_index async for frame in running.stub.Propagate(forward)] == [3, 4]
