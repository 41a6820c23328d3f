"""The object-shaped payload row: the scene's shapes as masks, carried in a click response exactly
as the server encodes a mask."""

from __future__ import annotations

import numpy as np
import pycocotools.mask

from labelgate.bench.images import object_masks, scene
from labelgate.bench.scenarios import Scenarios
from labelgate.v1 import labelgate_pb2 as pb


def test_object_masks_are_the_visible_shapes_of_the_scene():
    width, height = 320, 240
    pixels, masks = scene(5, width, height), object_masks(5, width, height)
    assert masks and all(mask.shape == (height, width) and mask.any() for mask in masks)
    overlap = np.sum(masks, axis=0)
    assert overlap.max() == 1  # visible parts never overlap
    for mask in masks:  # each is one flat colour in the image (JPEG aside, scene() is exact)
        assert len(np.unique(pixels[mask], axis=0)) == 1


def test_with_mask_replaces_the_click_mask_and_keeps_the_rest():
    mask = object_masks(5, 320, 240)[0]
    speckle = pb.Mask(score=0.75, area=1, rle=pb.CocoRle(size=[240, 320], counts="x" * 500))
    response = pb.SegmentResponse(image_id="abc", width=320, height=240, objects=[pb.ObjectMasks(masks=[speckle])])
    changed = Scenarios._with_mask(response, mask)
    assert response.objects[0].masks[0].rle.counts == "x" * 500  # the original is untouched
    (sent,) = changed.objects[0].masks
    assert changed.image_id == "abc" and sent.score == 0.75 and sent.area == int(mask.sum())
    decoded = pycocotools.mask.decode({"size": list(sent.rle.size), "counts": sent.rle.counts.encode()})
    np.testing.assert_array_equal(decoded.astype(bool), mask)
