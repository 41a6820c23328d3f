"""Frame sources: video files decoded with PyAV (read in any order), frames sent as images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from labelgate.core.errors import InvalidInput
from labelgate.server.video_frames import DECODED_FRAMES_KEPT, EncodedImageFrames, VideoFileFrames
from video_clip import HEIGHT, WIDTH, moving_shapes, video_bytes

NUM_FRAMES = 20


def png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("container, codec", [("mp4", "libx264"), ("webm", "libvpx-vp9"), ("mov", "libx264")])
def test_a_video_file_reads_the_same_frames_in_any_order(container, codec):
    data = video_bytes(moving_shapes(NUM_FRAMES), container, codec)
    in_order = VideoFileFrames(data, 10**8)
    assert (in_order.num_frames, in_order.width, in_order.height) == (NUM_FRAMES, WIDTH, HEIGHT)
    forward = [in_order.frame(i).copy() for i in range(NUM_FRAMES)]
    times = [in_order.timestamp(i) for i in range(NUM_FRAMES)]
    assert times == sorted(times) and times[1] > times[0]
    backward = VideoFileFrames(data, 10**8)
    for index in reversed(range(NUM_FRAMES)):  # backward tracking's order: seeks, then decodes forward
        np.testing.assert_array_equal(backward.frame(index), forward[index])
    assert len(backward.cache.frames) <= DECODED_FRAMES_KEPT
    assert backward.nbytes < len(data) + (DECODED_FRAMES_KEPT + 1) * HEIGHT * WIDTH * 3
    # Decoded pixels are the clip's, up to the codec's loss: the red square is red.
    assert forward[0][28, 12, 0] > 150 and forward[0][28, 12, 1] < 100


def test_what_is_not_a_video_is_invalid_input():
    with pytest.raises(InvalidInput, match="cannot decode the video"):
        VideoFileFrames(b"\x00\x00\x00\x18ftypmp42 but no more", 10**8)
    with pytest.raises(InvalidInput, match="max-image-pixels"):
        VideoFileFrames(video_bytes(moving_shapes(2)), 100)


def test_frames_sent_as_images_decode_on_demand_and_must_share_a_size():
    frames = moving_shapes(3)
    source = EncodedImageFrames([png(f) for f in frames], 10**8)
    np.testing.assert_array_equal(source.frame(2), frames[2])
    assert source.timestamp(2) == 0.0
    with pytest.raises(InvalidInput, match="frame 1 is"):
        EncodedImageFrames([png(frames[0]), png(frames[1][:32])], 10**8)
    with pytest.raises(InvalidInput, match="frame 1"):
        EncodedImageFrames([png(frames[0]), b"junk"], 10**8)


def test_frames_appended_are_checked_first_then_numbered_on():
    frames = moving_shapes(4)
    source = EncodedImageFrames([png(frames[0])], 10**8)
    source.append([png(frames[1]), png(frames[2])])
    assert source.num_frames == 3
    np.testing.assert_array_equal(source.frame(2), frames[2])
    with pytest.raises(InvalidInput, match="frame 4 is"):  # the second of the two: neither is added
        source.append([png(frames[3]), png(frames[3][:32])])
    with pytest.raises(InvalidInput, match="frame 3"):
        source.append([b"junk"])
    with pytest.raises(InvalidInput, match="no frames"):
        source.append([])
    assert source.num_frames == 3


def test_released_frames_hold_no_bytes_and_say_so_when_asked_for():
    frames = moving_shapes(3)
    source = EncodedImageFrames([png(f) for f in frames], 10**8)
    before = source.nbytes
    source.release({0, 2})
    assert [source.released(i) for i in range(3)] == [False, True, False]
    assert source.nbytes < before
    np.testing.assert_array_equal(source.frame(0), frames[0])
    with pytest.raises(InvalidInput, match="frame 1 was released.*--video-window"):
        source.frame(1)
