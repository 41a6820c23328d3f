"""The SDK's stream sessions and text to tracks against a real server (demo weights): frames
appended one at a time through `VideoSession.append_frames`, a session lost and reopened on the way
(its appended frames, prompts and tracked frames replayed), `add_text` against the raw RPCs, and
`labelgate track --text`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from labelgate.cli.main import main
from labelgate.client import AsyncClient, Client, encode_image
from labelgate.client.tracking import FoundObject, ObjectPrompt
from labelgate.client.video_session import SessionLog, SessionLost
from labelgate.v1 import labelgate_pb2 as pb
from video_clip import disc_centre, moving_shapes, square_box, video_bytes

STREAM_FRAMES = 17  # a stream session tracks as the whole clip opened at once from 16 frames on
PROMPTS = [ObjectPrompt(1, box=square_box(0)), ObjectPrompt(7, points=[disc_centre(0)])]
TEXT = "square . disc ."
THRESHOLD = 0.05  # the random demo SAM 3 scores low: let a few instances through
TEXT_SETTINGS = {"model": "sam3", "box_threshold": THRESHOLD, "text_threshold": THRESHOLD, "max_objects": 3}


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    return [encode_image(frame) for frame in moving_shapes(STREAM_FRAMES + 3)]


def content(frames) -> list:
    return [(f.frame_index, [(i, m.rle["counts"], m.score) for i, m in sorted(f.masks.items())]) for f in frames]


def lose(server, session) -> None:
    """The server forgets the session, as its idle TTL or a restart would."""
    server.stub().CloseVideo(pb.CloseVideoRequest(session_id=session.session_id))


def step_through(server, session, images, *, release=False, lose_before_append=(), lose_before_propagate=()):
    """CVAT's pattern: track the first frame, then append each next one and track it one step."""
    tracked = list(session.propagate())
    for index in range(1, len(images)):
        if index in lose_before_append:
            lose(server, session)
        assert session.append_frames([images[index]], release_old_frames=release) == index + 1
        if index in lose_before_propagate:
            lose(server, session)
        tracked += list(session.propagate(start_frame=index, max_frames=1))
    return tracked


@pytest.fixture(scope="module")
def uninterrupted(server, images) -> list:
    with Client(server.address) as client, client.open_video(images[:1], stream=True) as session:
        session.add_prompts(PROMPTS)
        return content(step_through(server, session, images[:STREAM_FRAMES]))


def test_a_stream_session_lost_twice_is_reopened_with_its_frames_and_tracks_as_if_never_lost(server, images, uninterrupted):
    with Client(server.address) as client, client.open_video(images[:1], stream=True) as session:
        session.add_prompts(PROMPTS)
        got = step_through(server, session, images[:STREAM_FRAMES], lose_before_append={5}, lose_before_propagate={11})
        assert session.reopens == 2 and session.frame_count == STREAM_FRAMES
    assert [index for index, _ in content(got)] == list(range(STREAM_FRAMES))
    assert content(got) == uninterrupted
    assert all(masks for _, masks in uninterrupted)


async def test_the_async_session_appends_and_is_reopened_too(server, images, uninterrupted):
    async with AsyncClient(server.address) as client:
        async with await client.open_video(images[:1], stream=True) as session:
            await session.add_prompts(PROMPTS)
            got = [frame async for frame in session.propagate()]
            for index in range(1, STREAM_FRAMES):
                if index == 8:
                    lose(server, session)
                await session.append_frames([images[index]])
                got += [frame async for frame in session.propagate(start_frame=index, max_frames=1)]
            assert session.reopens == 1
    assert content(got) == uninterrupted


def test_after_a_release_a_reopened_session_holds_the_kept_frames_under_the_callers_numbers(server, images, uninterrupted):
    count = len(images)  # 20: frames 1 and 2 are released by the last appends (16 kept besides the prompted 0)
    with Client(server.address) as client, client.open_video(images[:1], stream=True) as session:
        session.add_prompts(PROMPTS)
        got = step_through(server, session, images, release=True, lose_before_append={count - 1})
        assert session.reopens == 1 and session.frame_count == count
        assert session.response.frame_count == 1 + 16  # reopened on frame 0 and frames 3 .. 18 (19 appended after)
        assert sum(frame is not None for frame in session.log.frames) == 1 + 16  # the log is bounded as the server
        assert [frame.frame_index for frame in got] == list(range(count))
        assert content(got)[:STREAM_FRAMES] == uninterrupted  # before the loss: as ever
        assert all(sorted(frame.masks) == [1, 7] for frame in got)
        again = session.add_prompts([ObjectPrompt(1, frame=count - 2, points=[(30, 28)])])
        assert again[0].frame_index == count - 2
        with pytest.raises(ValueError, match="frame 1 was released"):
            session.add_prompts([ObjectPrompt(1, frame=1, points=[(30, 28)])])


# --- text to tracks --------------------------------------------------------------------------------


def raw_text_run(stub, frames: list[bytes]) -> tuple[list[FoundObject], list]:
    """The raw RPCs: a click on frame 0, text on frame 1, propagated from 0."""
    session = stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=[pb.Image(data=f) for f in frames]))).session_id
    try:
        stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=0, objects=[
            pb.ObjectPrompt(object_id=4, points=[pb.Point(x=10, y=10)])]))
        answer = stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=1, text=TEXT, text_model="sam3",
                                                      box_threshold=THRESHOLD, text_threshold=THRESHOLD, max_objects=3))
        tracked = [(f.frame_index, [(o.object_id, o.mask.rle.counts, o.mask.score) for o in f.objects])
                   for f in stub.Propagate(pb.PropagateRequest(session_id=session, start_frame=0))]
    finally:
        stub.CloseVideo(pb.CloseVideoRequest(session_id=session))
    return [FoundObject(f.object_id, f.label, f.score) for f in answer.found], tracked


@pytest.fixture(scope="module")
def raw_text(server, images):
    found, tracked = raw_text_run(server.stub(), images[:4])
    assert found, "the demo model found nothing: lower THRESHOLD"
    return found, tracked


@pytest.mark.parametrize("lost", [False, True])
def test_add_text_equals_the_raw_text_prompt_and_a_reopen_keeps_its_object_ids(server, images, raw_text, lost):
    found, tracked = raw_text
    with Client(server.address) as client, client.open_video(images[:4]) as session:
        session.add_prompts([ObjectPrompt(4, points=[(10, 10)])])
        added = session.add_text(1, TEXT, **TEXT_SETTINGS)
        assert added.found == found and [f.object_id for f in found] == list(range(5, 5 + len(found)))
        assert added.frame.frame_index == 1 and sorted(added.frame.masks) == [4] + [f.object_id for f in found]
        if lost:
            lose(server, session)
        got = content(session.propagate(start_frame=0))
        assert session.reopens == int(lost)
    assert got == [(index, sorted(masks)) for index, masks in tracked]


def test_track_with_text_tracks_every_instance_found(server, images, raw_text):
    _, tracked = raw_text
    with Client(server.address) as client:
        got = content(client.track(images[:4], [ObjectPrompt(4, points=[(10, 10)])], text=TEXT, text_frame=1,
                                   text_model="sam3", box_threshold=THRESHOLD, text_threshold=THRESHOLD, max_objects=3,
                                   start_frame=0))
    assert got == [(index, sorted(masks)) for index, masks in tracked]


def test_a_replayed_text_prompt_that_finds_other_objects_is_refused():
    log = SessionLog(pb.OpenVideoRequest(video=b"clip"))
    log.record_prompts(pb.AddPromptsRequest(frame_index=1, text=TEXT), found_ids=[5, 6])
    assert log.object_ids == [5, 6]
    log.check_replayed(0, pb.AddPromptsResponse(found=[pb.FoundObject(object_id=5), pb.FoundObject(object_id=6)]))
    with pytest.raises(SessionLost, match="found objects \\[5\\], not \\[5, 6\\]"):
        log.check_replayed(0, pb.AddPromptsResponse(found=[pb.FoundObject(object_id=5)]))


def test_the_track_command_with_text_writes_the_tracks_the_sdk_streams(server, tmp_path):
    clip = tmp_path / "shapes.mp4"
    clip.write_bytes(video_bytes(moving_shapes(4)))
    out = tmp_path / "tracked"
    assert main(["track", str(clip), "--text", TEXT, "--text-frame", "1", "--text-model", "sam3",
                 "--box-threshold", str(THRESHOLD), "--text-threshold", str(THRESHOLD), "--max-objects", "2",
                 "--out", str(out), "--server", server.address, "--no-progress", "--no-overlay"]) == 0
    with Client(server.address) as client:
        expected = {frame.frame_index: frame for frame in client.track(
            clip, text=TEXT, text_frame=1, text_model="sam3", box_threshold=THRESHOLD, text_threshold=THRESHOLD,
            max_objects=2)}
    assert sorted(expected) == [1, 2, 3]  # from the text's frame on
    coco = json.loads((out / "annotations.json").read_text())
    frame_of = {image["id"]: image["frame_index"] for image in coco["images"]}
    written = {(frame_of[a["image_id"]], a["track_id"]):
               mask_utils.decode({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()}).astype(bool)
               for a in coco["annotations"]}
    visible = {(index, obj): mask.to_numpy() for index, frame in expected.items() for obj, mask in frame.masks.items()
               if mask.area}
    assert visible and sorted(written) == sorted(visible)
    assert {obj for _, obj in visible} <= {1, 2}  # numbered from 1: no other prompt
    for key, mask in visible.items():
        assert np.array_equal(written[key], mask), key


def test_the_track_command_says_when_the_text_found_nothing(server, tmp_path, capsys):
    clip = tmp_path / "shapes.mp4"
    clip.write_bytes(video_bytes(moving_shapes(2)))
    assert main(["track", str(clip), "--text", TEXT, "--text-model", "sam3", "--box-threshold", "1",
                 "--out", str(tmp_path / "out"), "--server", server.address, "--no-progress"]) == 2
    assert "found nothing on frame 0" in capsys.readouterr().err
