"""Video tracking through a real server: a clip written with PyAV, tracked, corrected, cut short,
and refused with clear statuses."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from labelgate.client import Client
from labelgate.client.tracking import ObjectPrompt
from labelgate.v1 import labelgate_pb2 as pb
from server_process import start_server
from video_clip import HEIGHT, WIDTH, disc_centre, moving_shapes, square_box, video_bytes

NUM_FRAMES = 5
MAX_SESSIONS = 3


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("server"), demo_weights, "--gdino-model", "",
                           "--video-max-sessions", str(MAX_SESSIONS))
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def stub(server):
    return server.stub()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return video_bytes(moving_shapes(NUM_FRAMES))


def open_with_two_objects(stub, video: bytes) -> str:
    opened = stub.OpenVideo(pb.OpenVideoRequest(video=video))
    x0, y0, x1, y1 = square_box(0)
    x, y = disc_centre(0)
    stub.AddPrompts(pb.AddPromptsRequest(session_id=opened.session_id, frame_index=0, objects=[
        pb.ObjectPrompt(object_id=1, box=pb.Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1)),
        pb.ObjectPrompt(object_id=7, points=[pb.Point(x=x, y=y)]),
    ]))
    return opened.session_id


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        result = call()
        if hasattr(result, "__iter__"):
            list(result)
    return error.value.code()


def test_a_video_file_is_tracked_frame_by_frame_then_a_correction_recomputes_only_what_follows(stub, clip):
    opened = stub.OpenVideo(pb.OpenVideoRequest(video=clip))
    assert (opened.frame_count, opened.width, opened.height) == (NUM_FRAMES, WIDTH, HEIGHT)
    assert list(opened.timestamps) == sorted(opened.timestamps) and len(opened.timestamps) == NUM_FRAMES
    session = opened.session_id
    x0, y0, x1, y1 = square_box(0)
    first = stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=0, objects=[
        pb.ObjectPrompt(object_id=1, box=pb.Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1)),
        pb.ObjectPrompt(object_id=7, points=[pb.Point(x=disc_centre(0)[0], y=disc_centre(0)[1])]),
    ]))
    assert [o.object_id for o in first.frame.objects] == [1, 7]
    frames = list(stub.Propagate(pb.PropagateRequest(session_id=session, formats=[pb.COCO_RLE, pb.PNG])))
    assert [f.frame_index for f in frames] == list(range(NUM_FRAMES))
    assert [f.timestamp for f in frames] == list(opened.timestamps)
    for frame in frames:
        assert [o.object_id for o in frame.objects] == [1, 7]
        for obj in frame.objects:
            rle = {"size": list(obj.mask.rle.size), "counts": obj.mask.rle.counts.encode()}
            assert mask_utils.decode(rle).shape == (HEIGHT, WIDTH)
            assert int(mask_utils.decode(rle).sum()) == obj.mask.area and obj.mask.png
            assert 0.0 <= obj.mask.score <= 1.0
    # The first frame streamed is the prompted one: the masks AddPrompts answered.
    assert [o.mask.rle.counts for o in frames[0].objects] == [o.mask.rle.counts for o in first.frame.objects]

    stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=3, objects=[
        pb.ObjectPrompt(object_id=1, points=[pb.Point(x=square_box(3)[0] + 8, y=28)])]))
    again = list(stub.Propagate(pb.PropagateRequest(session_id=session, object_ids=[1])))
    assert [f.frame_index for f in again] == [3, 4]  # from the corrected frame on, not from frame 0
    assert all([o.object_id for o in f.objects] == [1] for f in again)
    backward = list(stub.Propagate(pb.PropagateRequest(session_id=session, start_frame=2, direction=pb.PROPAGATE_BACKWARD)))
    assert [f.frame_index for f in backward] == [2, 1, 0]
    closed = stub.CloseVideo(pb.CloseVideoRequest(session_id=session))
    assert closed.frames_tracked == 2 + NUM_FRAMES + 1 + 2 + 3  # each object's AddPrompts counts one
    assert code_of(lambda: stub.CloseVideo(pb.CloseVideoRequest(session_id=session))) == grpc.StatusCode.NOT_FOUND


def test_a_client_that_goes_away_mid_stream_stops_the_tracking(stub):
    frames = 12
    session = open_with_two_objects(stub, video_bytes(moving_shapes(frames)))
    stream = stub.Propagate(pb.PropagateRequest(session_id=session))
    assert next(stream).frame_index == 0
    stream.cancel()
    # The count is of the model's runs: the frame in progress when the cancel came is the last.
    tracked = stub.CloseVideo(pb.CloseVideoRequest(session_id=session)).frames_tracked
    assert tracked < 2 + frames


def test_bad_input_gets_clear_statuses(stub, clip):
    assert code_of(lambda: stub.OpenVideo(pb.OpenVideoRequest(video=b"not a video at all"))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: stub.OpenVideo(pb.OpenVideoRequest())) == grpc.StatusCode.INVALID_ARGUMENT
    unknown = pb.AddPromptsRequest(session_id="no-such-session", objects=[pb.ObjectPrompt(object_id=1, points=[pb.Point(x=1, y=1)])])
    assert code_of(lambda: stub.AddPrompts(unknown)) == grpc.StatusCode.NOT_FOUND
    session = stub.OpenVideo(pb.OpenVideoRequest(video=clip)).session_id
    try:
        assert code_of(lambda: stub.Propagate(pb.PropagateRequest(session_id=session))) == grpc.StatusCode.INVALID_ARGUMENT
        out_of_range = pb.AddPromptsRequest(session_id=session, frame_index=NUM_FRAMES,
                                            objects=[pb.ObjectPrompt(object_id=1, points=[pb.Point(x=1, y=1)])])
        assert code_of(lambda: stub.AddPrompts(out_of_range)) == grpc.StatusCode.INVALID_ARGUMENT
        empty = pb.AddPromptsRequest(session_id=session, objects=[pb.ObjectPrompt(object_id=1)])
        assert code_of(lambda: stub.AddPrompts(empty)) == grpc.StatusCode.INVALID_ARGUMENT
        stub.AddPrompts(pb.AddPromptsRequest(session_id=session, objects=[pb.ObjectPrompt(object_id=1, points=[pb.Point(x=20, y=28)])]))
        unknown_object = pb.PropagateRequest(session_id=session, object_ids=[2])
        assert code_of(lambda: stub.Propagate(unknown_object)) == grpc.StatusCode.NOT_FOUND
        assert code_of(lambda: stub.Propagate(pb.PropagateRequest(session_id=session, start_frame=99))) == \
            grpc.StatusCode.INVALID_ARGUMENT
    finally:
        stub.CloseVideo(pb.CloseVideoRequest(session_id=session))


def test_past_the_most_sessions_is_resource_exhausted_until_one_closes(stub, clip):
    sessions = [stub.OpenVideo(pb.OpenVideoRequest(video=clip)).session_id for _ in range(MAX_SESSIONS)]
    with pytest.raises(grpc.RpcError) as refused:
        stub.OpenVideo(pb.OpenVideoRequest(video=clip))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "--video-max-sessions" in refused.value.details()
    stub.CloseVideo(pb.CloseVideoRequest(session_id=sessions.pop()))
    sessions.append(stub.OpenVideo(pb.OpenVideoRequest(video=clip)).session_id)
    for session in sessions:
        stub.CloseVideo(pb.CloseVideoRequest(session_id=session))


def test_the_sdk_tracks_frames_sent_as_images(server):
    frames = moving_shapes(3)
    with Client(f"127.0.0.1:{server.port}") as client:
        prompts = [ObjectPrompt(1, frame=0, box=square_box(0)), ObjectPrompt(2, frame=1, points=[disc_centre(1)])]
        tracked = list(client.track(frames, prompts, direction="forward"))
    assert [t.frame_index for t in tracked] == [0, 1, 2]
    assert sorted(tracked[-1].masks) == [1, 2]
    assert tracked[-1].masks[1].to_numpy().shape == (HEIGHT, WIDTH)
    assert isinstance(tracked[0].masks[1].to_numpy(), np.ndarray)


async def test_the_async_sdk_tracks_a_video_file(server, clip):
    from labelgate.client import AsyncClient

    async with AsyncClient(f"127.0.0.1:{server.port}") as client:
        tracked = [frame async for frame in client.track(clip, [ObjectPrompt(3, box=square_box(0))], max_frames=2)]
    assert [t.frame_index for t in tracked] == [0, 1]
    assert tracked[1].timestamp > tracked[0].timestamp and list(tracked[1].masks) == [3]


def png_frames(count: int) -> list[pb.Image]:
    import io

    from PIL import Image

    images = []
    for frame in moving_shapes(count):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        images.append(pb.Image(data=buffer.getvalue()))
    return images


def prompt_two_objects(stub, session: str) -> None:
    x0, y0, x1, y1 = square_box(0)
    stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=0, objects=[
        pb.ObjectPrompt(object_id=1, box=pb.Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1)),
        pb.ObjectPrompt(object_id=7, points=[pb.Point(x=disc_centre(0)[0], y=disc_centre(0)[1])]),
    ]))


def masks_of(frame: pb.TrackedFrame) -> list:
    return [(o.object_id, o.mask.rle.counts, o.mask.score) for o in frame.objects]


def test_frames_appended_one_at_a_time_track_as_the_same_frames_opened_at_once(stub):
    """A `stream` session is tracked as a long clip from the start (SAM 2 caps its object-pointer
    memory at min(clip length, 16) frames): with 16 frames, appended one by one and tracked one step
    each as CVAT does, every mask equals the whole clip's opened at once."""
    images = png_frames(16)
    whole = stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=images))).session_id
    streamed = stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=images[:1]), stream=True)).session_id
    try:
        prompt_two_objects(stub, whole)
        expected = list(stub.Propagate(pb.PropagateRequest(session_id=whole)))
        prompt_two_objects(stub, streamed)
        got = list(stub.Propagate(pb.PropagateRequest(session_id=streamed)))
        for index in range(1, len(images)):
            appended = stub.AppendFrames(pb.AppendFramesRequest(session_id=streamed, frames=pb.VideoFrames(frames=[images[index]]),
                                                                release_old_frames=True))
            assert appended.frame_count == index + 1 and appended.session_bytes > 0
            got += list(stub.Propagate(pb.PropagateRequest(session_id=streamed, start_frame=index, max_frames=1)))
        assert [f.frame_index for f in got] == [f.frame_index for f in expected] == list(range(len(images)))
        assert [masks_of(f) for f in got] == [masks_of(f) for f in expected]
        assert all(o.mask.area for o in expected[-1].objects)  # both objects were tracked to the end
    finally:
        for session in (whole, streamed):
            stub.CloseVideo(pb.CloseVideoRequest(session_id=session))


def test_appending_frames_refuses_what_does_not_fit_with_clear_statuses(stub, clip):
    images = png_frames(2)
    unknown = pb.AppendFramesRequest(session_id="no-such-session", frames=pb.VideoFrames(frames=images[1:]))
    assert code_of(lambda: stub.AppendFrames(unknown)) == grpc.StatusCode.NOT_FOUND
    from_file = stub.OpenVideo(pb.OpenVideoRequest(video=clip)).session_id
    from_frames = stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=images[:1]))).session_id
    try:
        to_file = pb.AppendFramesRequest(session_id=from_file, frames=pb.VideoFrames(frames=images[1:]))
        assert code_of(lambda: stub.AppendFrames(to_file)) == grpc.StatusCode.INVALID_ARGUMENT
        smaller = png_frames(1)[0]
        smaller.data = _png_of_size(WIDTH // 2, HEIGHT)
        wrong_size = pb.AppendFramesRequest(session_id=from_frames, frames=pb.VideoFrames(frames=[smaller]))
        with pytest.raises(grpc.RpcError) as refused:
            stub.AppendFrames(wrong_size)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "one size" in refused.value.details()
        nothing = pb.AppendFramesRequest(session_id=from_frames)
        assert code_of(lambda: stub.AppendFrames(nothing)) == grpc.StatusCode.INVALID_ARGUMENT
        beyond = pb.PropagateRequest(session_id=from_frames, start_frame=1)
        prompt_two_objects(stub, from_frames)
        assert code_of(lambda: stub.Propagate(beyond)) == grpc.StatusCode.INVALID_ARGUMENT  # nothing was appended
        stub.AppendFrames(pb.AppendFramesRequest(session_id=from_frames, frames=pb.VideoFrames(frames=images[1:])))
        assert [f.frame_index for f in stub.Propagate(beyond)] == [1]
    finally:
        for session in (from_file, from_frames):
            stub.CloseVideo(pb.CloseVideoRequest(session_id=session))


def _png_of_size(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_appending_with_release_keeps_only_the_prompted_and_the_last_window_of_frames(stub):
    images = png_frames(20)
    window = 16  # the server's --video-window (default)
    session = stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=images[:1]), stream=True)).session_id
    try:
        prompt_two_objects(stub, session)
        for image in images[1:]:
            stub.AppendFrames(pb.AppendFramesRequest(session_id=session, frames=pb.VideoFrames(frames=[image]),
                                                     release_old_frames=True))
        released = len(images) - window - 1  # frames 1 .. 3: neither prompted nor among the last 16
        with pytest.raises(grpc.RpcError) as refused:
            stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=released, objects=[
                pb.ObjectPrompt(object_id=1, points=[pb.Point(x=20, y=28)])]))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "released" in refused.value.details()
        assert code_of(lambda: stub.Propagate(pb.PropagateRequest(session_id=session, start_frame=released))) == \
            grpc.StatusCode.INVALID_ARGUMENT
        backward = stub.Propagate(pb.PropagateRequest(session_id=session, start_frame=released + 1, direction=pb.PROPAGATE_BACKWARD))
        streamed = []
        with pytest.raises(grpc.RpcError) as refused:
            for frame in backward:
                streamed.append(frame.frame_index)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and streamed == []  # refused before its first frame
        assert f"frame {released} was released" in refused.value.details()
        assert f"frames 0, {released + 1}-{len(images) - 1}" in refused.value.details()
        kept = [f.frame_index for f in stub.Propagate(pb.PropagateRequest(session_id=session, start_frame=released + 1))]
        assert kept == list(range(released + 1, len(images)))
        stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=0, objects=[  # the prompted frame stays
            pb.ObjectPrompt(object_id=1, points=[pb.Point(x=20, y=28)])]))
    finally:
        stub.CloseVideo(pb.CloseVideoRequest(session_id=session))
