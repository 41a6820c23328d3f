"""The SDK's video session log (labelgate.client.video_log) without a server: what a session opened
from frames, fed more and releasing old ones, reopens with, and how its frame numbers map."""

from __future__ import annotations

import grpc
import pytest

from labelgate.client.errors import LabelgateClientError
from labelgate.client.video_log import SessionLog
from labelgate.v1 import labelgate_pb2 as pb


def stream_log(keep_frames: int) -> SessionLog:
    log = SessionLog(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=[pb.Image(data=b"f0")]), stream=True), keep_frames)
    log.record_prompts(pb.AddPromptsRequest(frame_index=0, objects=[pb.ObjectPrompt(object_id=1)]))
    return log


def test_appended_frames_are_reopened_with_the_first_and_numbered_alike():
    log = stream_log(keep_frames=2)
    log.record_append([b"f1", b"f2"], release_old_frames=False, server_frame_count=3)
    reopen = log.reopen_request()
    assert [image.data for image in reopen.frames.frames] == [b"f0", b"f1", b"f2"] and reopen.stream
    assert log.server_frames is None and log.to_server(2) == 2
    log.record_tracked([0, 1, 2], "forward")
    rebuild = log.rebuild_request()
    assert (rebuild.start_frame, rebuild.max_frames) == (0, 3)


def test_after_a_release_the_reopened_session_holds_the_prompted_and_the_last_frames_under_new_numbers():
    log = stream_log(keep_frames=2)
    for index in range(1, 6):
        log.record_append([f"f{index}".encode()], release_old_frames=True, server_frame_count=index + 1)
    assert [frame is not None for frame in log.frames] == [True, False, False, False, True, True]
    log.record_tracked([4], "forward")
    reopen = log.reopen_request()
    assert [image.data for image in reopen.frames.frames] == [b"f0", b"f4", b"f5"]
    assert [log.to_server(frame) for frame in (0, 4, 5)] == [0, 1, 2] and log.to_client(2) == 5
    with pytest.raises(ValueError, match="frame 3 was released"):
        log.to_server(3)
    rebuild = log.rebuild_request()
    assert (rebuild.start_frame, rebuild.max_frames) == (0, 2)  # server frames 0 and 1: frames 0 and 4
    log.record_append([b"f6"], release_old_frames=False, server_frame_count=4)
    assert log.to_server(6) == 3 and log.server_frame_count == 4 and log.frame_count == 7


def test_a_session_attached_by_id_counts_the_servers_frames_and_is_never_reopened():
    log = SessionLog(None)
    log.record_append([b"x"], release_old_frames=True, server_frame_count=9)
    assert log.frame_count == 9
    assert not log.may_reopen(LabelgateClientError(grpc.StatusCode.NOT_FOUND, "gone"))
