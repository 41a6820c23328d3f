"""Text to tracks through a real server (demo weights): a text prompt on a frame adds one object per
instance that an image Segment(text) finds on that frame, each tracked from its mask exactly as if
the caller had sent those masks as prompts. (`server`, `stub`: tests/integration/conftest.py.)"""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from labelgate.v1 import labelgate_pb2 as pb
from video_clip import moving_shapes

NUM_FRAMES = 4
THRESHOLD = 0.05  # the random demo SAM 3 scores low: let a few instances through


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    encoded = []
    for frame in moving_shapes(NUM_FRAMES):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def open_frames(stub, frames) -> str:
    return stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=[pb.Image(data=f) for f in frames]))).session_id


def tracked(stub, session: str) -> list[list[tuple[int, bytes]]]:
    return [[(o.object_id, o.mask.png) for o in frame.objects]
            for frame in stub.Propagate(pb.PropagateRequest(session_id=session, formats=[pb.PNG]))]


@pytest.mark.parametrize("text_model", ["sam3", ""])  # SAM 3's concepts; Grounding DINO + SAM 2
def test_text_adds_each_instance_found_on_the_frame_as_an_object(stub, frames, text_model):
    segment = stub.Segment(pb.SegmentRequest(image=pb.Image(data=frames[1]), text="square . disc .", model=text_model,
                                             box_threshold=THRESHOLD, text_threshold=THRESHOLD, formats=[pb.PNG]))
    instances = sorted(segment.objects, key=lambda o: -(o.detection_score or o.masks[0].score))[:3]
    instances = [o for o in instances if o.masks[0].area > 0]
    assert instances, "the demo model found nothing to compare with: lower THRESHOLD"

    by_text = open_frames(stub, frames)
    stub.AddPrompts(pb.AddPromptsRequest(session_id=by_text, frame_index=0, objects=[
        pb.ObjectPrompt(object_id=4, points=[pb.Point(x=10, y=10)])]))
    answer = stub.AddPrompts(pb.AddPromptsRequest(session_id=by_text, frame_index=1, text="square . disc .",
                                                  text_model=text_model, box_threshold=THRESHOLD,
                                                  text_threshold=THRESHOLD, max_objects=3, formats=[pb.PNG]))
    assert [f.object_id for f in answer.found] == list(range(5, 5 + len(instances)))
    assert [f.label for f in answer.found] == [o.label for o in instances]
    assert [o.object_id for o in answer.frame.objects] == [4] + [f.object_id for f in answer.found]

    by_masks = open_frames(stub, frames)
    stub.AddPrompts(pb.AddPromptsRequest(session_id=by_masks, frame_index=0, objects=[
        pb.ObjectPrompt(object_id=4, points=[pb.Point(x=10, y=10)])]))
    stub.AddPrompts(pb.AddPromptsRequest(session_id=by_masks, frame_index=1, objects=[
        pb.ObjectPrompt(object_id=found.object_id, mask_png=o.masks[0].png) for found, o in zip(answer.found, instances)]))
    assert tracked(stub, by_text) == tracked(stub, by_masks)


def test_text_that_finds_nothing_adds_nothing_and_bad_text_settings_are_the_callers(stub, frames):
    session = open_frames(stub, frames)
    answer = stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=0, text="square .", text_model="sam3",
                                                  box_threshold=1.0))
    assert list(answer.found) == [] and list(answer.frame.objects) == []
    with pytest.raises(grpc.RpcError) as caught:
        stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=0, text="square .", text_model="nope"))
    assert caught.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        stub.AddPrompts(pb.AddPromptsRequest(session_id=session, frame_index=0))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "or text" in caught.value.details()
