"""How a real server treats the image of a request: strips of extreme aspect ratio are served by
every method, and an image sent by id is decoded once per request even where the detector and
the image encoder both need its pixels."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.v1 import labelgate_pb2 as pb
from reference import decode_rle, encode

# Well under the default pixel limit; Grounding DINO's processor alone would round the short side
# of these to 0 pixels.
STRIPS = {"1 x 100000": (1, 100_000), "100000 x 1": (100_000, 1)}
TEXT = {"text": "cat . dog .", "box_threshold": 0.05, "text_threshold": 0.05}
TIMEOUT = 120


def strip(height: int, width: int) -> bytes:
    return encode(np.random.default_rng(height + width).integers(0, 256, (height, width, 3), dtype=np.uint8))


def assert_masks_cover(objects, height: int, width: int) -> None:
    for obj in objects:
        for mask in obj.masks:
            assert decode_rle(mask).shape == (height, width)


@pytest.mark.parametrize("name", list(STRIPS))
def test_a_strip_is_served_by_every_method(stub, name):
    height, width = STRIPS[name]
    data = strip(height, width)

    embedded = stub.Embed(pb.EmbedRequest(image=pb.Image(data=data)), timeout=TIMEOUT)
    assert (embedded.width, embedded.height) == (width, height)
    image = pb.Image(image_id=embedded.image_id)

    clicked = stub.Segment(pb.SegmentRequest(image=image, points=[pb.Point(x=width / 2, y=height / 2)]), timeout=TIMEOUT)
    assert len(clicked.objects) == 1
    assert_masks_cover(clicked.objects, height, width)

    detected = stub.Detect(pb.DetectRequest(image=pb.Image(data=data), **TEXT), timeout=TIMEOUT)
    assert (detected.width, detected.height) == (width, height)
    boxes = np.array([(d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max) for d in detected.detections]).reshape(-1, 4)
    assert np.isfinite(boxes).all()

    segmented = stub.Segment(pb.SegmentRequest(image=image, **TEXT), timeout=TIMEOUT)
    assert len(segmented.objects) == len(detected.detections)
    assert_masks_cover(segmented.objects, height, width)


def test_an_image_sent_by_id_is_decoded_once_for_detector_and_encoder_together(server, stub):
    data = strip(48, 64)
    detected = stub.Detect(pb.DetectRequest(image=pb.Image(data=data), **TEXT), timeout=TIMEOUT)
    decodes = server.metric("labelgate_stage_seconds_count", stage="decode_image")

    segmented = stub.Segment(pb.SegmentRequest(image=pb.Image(image_id=detected.image_id), **TEXT), timeout=TIMEOUT)

    assert not segmented.cache_hit  # the encoder needed the pixels, as did the detector
    assert server.metric("labelgate_stage_seconds_count", stage="decode_image") == decodes + 1
