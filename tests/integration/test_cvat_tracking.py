"""The CVAT trackers against a real labelgate server (demo weights), on the generated clip: the
cvat-sdk tracking function driven by cvat-cli's own tracking agent driver, and the nuclio tracker
with CVAT-shaped requests. What they return must be SAM 2's tracking of the same clip opened at once
in labelgate (a `stream` session tracks as a clip of 16 frames or more: see test_video.py)."""

from __future__ import annotations

import cvat_sdk.auto_annotation as cvataa
import numpy as np
import pytest
from cvat_cli._internal.agent_driver import set_worker_current_function
from cvat_cli._internal.agent_driver_tracking import (
    AgentTrackingFunctionDriver,
    _TrackingFunctionShapeContextImpl,
    _worker_job_init_tracking,
    _worker_job_track,
)
from cvat_cli._internal.common import FunctionLoader
from cvat_sdk.masks import decode_mask, encode_mask
from cvat_side import FUNCTIONS, NuclioContext, b64, event, load_function
from PIL import Image
from video_clip import HEIGHT, WIDTH, disc_centre, moving_shapes, square_box

from labelgate.client import encode_image
from labelgate.client.results import mask_from_pb
from labelgate.v1 import labelgate_pb2 as pb
from labelgate_cvat.detections import outline
from labelgate_cvat.tracking_function import ShapeTrack
from labelgate_cvat.tracks import Track, polygon_mask

CLIP_FRAMES = 16  # SAM 2 tracks any clip this long or longer alike
TRACKED = 4  # frames tracked by the functions: the start frame and 3 more
FRAMES = moving_shapes(CLIP_FRAMES)
PNGS = [encode_image(frame) for frame in FRAMES]
DISC = [int(v) for v in (disc_centre(0)[0] - 8, disc_centre(0)[1] - 8, disc_centre(0)[0] + 8, disc_centre(0)[1] + 8)]
DISC_POLYGON = [float(v) for v in (DISC[0] + 8, DISC[1], DISC[2], DISC[1] + 8, DISC[0] + 8, DISC[3], DISC[0], DISC[1] + 8)]


def disc_mask() -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    x, y = disc_centre(0)
    return (xs - x) ** 2 + (ys - y) ** 2 <= 64


def png_of(mask: np.ndarray) -> bytes:
    return encode_image(mask)


@pytest.fixture(scope="module")
def reference(server) -> dict:
    """{object: [its Mask on frames 1 .. TRACKED - 1]} with the prompts the functions get: the square
    by its box (1), the disc by a polygon (2) and by a mask (3)."""
    stub = server.stub()
    opened = stub.OpenVideo(pb.OpenVideoRequest(frames=pb.VideoFrames(frames=[pb.Image(data=data) for data in PNGS])))
    x0, y0, x1, y1 = square_box(0)
    try:
        stub.AddPrompts(pb.AddPromptsRequest(session_id=opened.session_id, frame_index=0, objects=[
            pb.ObjectPrompt(object_id=1, box=pb.Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1)),
            pb.ObjectPrompt(object_id=2, mask_png=png_of(polygon_mask(DISC_POLYGON, HEIGHT, WIDTH))),
            pb.ObjectPrompt(object_id=3, mask_png=png_of(disc_mask())),
        ]))
        frames = list(stub.Propagate(pb.PropagateRequest(session_id=opened.session_id, max_frames=TRACKED,
                                                         formats=[pb.COCO_RLE, pb.POLYGONS])))
    finally:
        stub.CloseVideo(pb.CloseVideoRequest(session_id=opened.session_id))
    return {obj.object_id: [mask_from_pb(f.objects[obj.object_id - 1].mask, (HEIGHT, WIDTH)) for f in frames[1:]]
            for obj in frames[0].objects}


def test_the_tracking_function_through_the_cvat_agent_follows_rectangles_polygons_and_masks(server, reference):
    function = FunctionLoader("labelgate_cvat.tracking_function", None, {"server": server.address}).load()
    assert isinstance(function.spec, cvataa.TrackingFunctionSpec)
    assert AgentTrackingFunctionDriver.get_remote_function_fields(function.spec) == \
        {"supported_shape_types": ["mask", "polygon", "rectangle"]}
    set_worker_current_function(function)
    ids = iter(range(100))
    AgentTrackingFunctionDriver.init_worker(lambda: f"state-{next(ids)}")
    shapes = [cvataa.TrackableShape(type="rectangle", points=list(square_box(0))),
              cvataa.TrackableShape(type="polygon", points=DISC_POLYGON),
              cvataa.TrackableShape(type="mask", points=encode_mask(disc_mask()))]
    states = _worker_job_init_tracking(1, Image.fromarray(FRAMES[0]), shapes)
    for index in range(1, TRACKED):
        box, polygon, mask = _worker_job_track(1, Image.fromarray(FRAMES[index]), states)
        expected_box, expected_polygon, expected_mask = (reference[obj][index - 1] for obj in (1, 2, 3))
        assert (box.type, polygon.type, mask.type) == ("rectangle", "polygon", "mask")
        assert box.points == [float(v) for v in expected_box.bbox]
        assert polygon.points == outline(expected_polygon)
        np.testing.assert_array_equal(decode_mask(mask.points, image_width=WIDTH, image_height=HEIGHT),
                                      expected_mask.to_numpy())

    # A session the server no longer has starts again from the shape last returned, on this frame.
    lost = ShapeTrack(Track("expired-or-restarted"), box)
    again = function.track(_TrackingFunctionShapeContextImpl(original_shape_type="rectangle"),
                            function.preprocess_image(None, Image.fromarray(FRAMES[TRACKED])), lost)
    assert again == box and lost.track.session_id != "expired-or-restarted"
    function.client.close()


def test_the_nuclio_tracker_answers_cvats_shapes_and_states(server, reference, monkeypatch):
    monkeypatch.setenv("LABELGATE_SERVER", server.address)
    function, context = load_function(FUNCTIONS / "sam2-tracker"), NuclioContext()
    function.init_context(context)
    start = list(square_box(0))
    reply = function.handler(context, event({"image": b64(PNGS[0]), "shapes": [start], "states": [None]}))
    assert reply.status_code == 200, reply.body
    body = reply.json()
    assert body["shapes"] == [start] and len(body["states"]) == 1
    for index in range(1, TRACKED):  # CVAT sends back the last shapes and states it got
        reply = function.handler(context, event({"image": b64(PNGS[index]), **body}))
        assert reply.status_code == 200, reply.body
        body = reply.json()
        assert body["shapes"] == [[float(v) for v in reference[1][index - 1].bbox]]

    # A session the server no longer has starts again from the rectangle sent.
    lost = {"image": b64(PNGS[0]), "shapes": [start], "states": [{"session_id": "expired-or-restarted"}]}
    reply = function.handler(context, event(lost)).json()
    assert reply["shapes"] == [start] and reply["states"][0]["session_id"] != "expired-or-restarted"

    for bad in ({"image": b64(PNGS[0]), "shapes": [start], "states": []},
                {"image": b64(PNGS[0]), "shapes": [[1, 2, 3]], "states": [None]},
                {"image": b64(PNGS[0]), "shapes": [start], "states": ["no-session"]}):
        assert function.handler(context, event(bad)).status_code == 400
    wrong_size = {"image": b64(encode_image(FRAMES[1][:32])), **body}
    refused = function.handler(context, event(wrong_size))
    assert refused.status_code == 400 and "one size" in refused.json()["error"]
    context.user_data.client.close()
