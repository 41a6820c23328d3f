"""Refinement from the previous logits: a Segment naming an earlier mask_id gives exactly what
SAM2ImagePredictor.predict gives with that mask's low-res logits as mask_input."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from labelgate.v1 import labelgate_pb2 as pb
from reference import decode_rle, encode, iou, random_image, segment_request

IMAGE = random_image(7, 240, 360)
OTHER_IMAGE = random_image(8, 200, 300)
FIRST_CLICK = [(180.0, 120.0, False)]
ADDED_CLICKS = {
    "a negative click": [(60.0, 40.0, True)],
    "a positive click": [(300.0, 200.0, False)],
}


def _predict(predictor, points, multimask: bool, mask_input=None):
    """(masks (K, H, W) bool, scores (K,), low-res logits (K, h, w)) from the predictor."""
    masks, scores, low_res = predictor.predict(
        point_coords=np.array([(x, y) for x, y, _ in points], np.float32),
        point_labels=np.array([0 if negative else 1 for *_, negative in points], np.int32),
        mask_input=mask_input,
        multimask_output=multimask,
    )
    return masks.astype(bool), scores, low_res


@pytest.mark.fidelity
@pytest.mark.parametrize("added", sorted(ADDED_CLICKS))
@pytest.mark.parametrize("multimask", [False, True])
def test_refined_masks_identical_to_predictor_with_mask_input(stub, predictor, added, multimask):
    first = stub.Segment(segment_request(pb.Image(data=encode(IMAGE)), FIRST_CLICK, [], multimask))
    predictor.set_image(IMAGE)
    _, first_scores, first_low_res = _predict(predictor, FIRST_CLICK, multimask)
    chosen = int(np.argmax(first_scores))  # the mask a user would refine: the best one
    masks = first.objects[0].masks
    assert [m.score for m in masks] == list(first_scores)
    assert all(m.mask_id for m in masks) and len({m.mask_id for m in masks}) == len(masks)

    clicks = FIRST_CLICK + ADDED_CLICKS[added]
    refined = stub.Segment(segment_request(pb.Image(image_id=first.image_id), clicks, [], multimask,
                                           refine_mask_id=masks[chosen].mask_id))
    expected_masks, expected_scores, _ = _predict(predictor, clicks, multimask, mask_input=first_low_res[chosen][None])

    assert len(refined.objects) == 1 and len(refined.objects[0].masks) == len(expected_masks)
    for message, mask, score in zip(refined.objects[0].masks, expected_masks, expected_scores):
        decoded = decode_rle(message)
        assert np.array_equal(decoded, mask), f"IoU {iou(decoded, mask):.5f}"
        assert message.score == score
        assert message.mask_id  # a refined mask can be refined again


def test_refinement_changes_the_result(stub):
    """The mask input reaches the decoder: with it, the same clicks give other scores than without."""
    first = stub.Segment(segment_request(pb.Image(data=encode(IMAGE)), FIRST_CLICK, [], False))
    clicks = FIRST_CLICK + ADDED_CLICKS["a negative click"]
    image = pb.Image(image_id=first.image_id)
    plain = stub.Segment(segment_request(image, clicks, [], False))
    refined = stub.Segment(segment_request(image, clicks, [], False, refine_mask_id=first.objects[0].masks[0].mask_id))
    assert plain.objects[0].masks[0].score != refined.objects[0].masks[0].score


def test_several_box_objects_and_text_get_no_mask_id(stub):
    boxes = [(10.0, 10.0, 100.0, 100.0), (150.0, 50.0, 300.0, 200.0)]
    response = stub.Segment(segment_request(pb.Image(data=encode(IMAGE)), [], boxes, False))
    assert [m.mask_id for obj in response.objects for m in obj.masks] == ["", ""]


def _refine_error(stub, image_message, mask_id, boxes=(), **fields) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Segment(segment_request(image_message, FIRST_CLICK, list(boxes), False, refine_mask_id=mask_id, **fields))
    return caught.value


def test_unknown_mask_id_is_not_found(stub):
    error = _refine_error(stub, pb.Image(data=encode(IMAGE)), "mask_" + "0" * 32)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "without refine_mask_id" in error.details()


def test_malformed_mask_id_is_invalid_and_echoed_bounded(stub):
    error = _refine_error(stub, pb.Image(data=encode(IMAGE)), "x" * 10_000)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a mask id" in error.details() and len(error.details()) < 400


def test_mask_of_another_image_is_invalid(stub):
    first = stub.Segment(segment_request(pb.Image(data=encode(IMAGE)), FIRST_CLICK, [], False))
    error = _refine_error(stub, pb.Image(data=encode(OTHER_IMAGE)), first.objects[0].masks[0].mask_id)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert first.image_id in error.details()


def test_refine_with_several_boxes_is_invalid(stub):
    first = stub.Segment(segment_request(pb.Image(data=encode(IMAGE)), FIRST_CLICK, [], False))
    boxes = [(10.0, 10.0, 100.0, 100.0), (150.0, 50.0, 300.0, 200.0)]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Segment(segment_request(pb.Image(image_id=first.image_id), [], boxes, False,
                                     refine_mask_id=first.objects[0].masks[0].mask_id))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "one object" in caught.value.details()
