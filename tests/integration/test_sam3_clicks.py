"""Clicks on a SAM 3 model served by name through gRPC (the tiny random-weight SAM 3 next to the demo
pair): Segment with points and boxes on a `sam3` model answers what its backend computes on the same
image, refinement by `refine_mask_id` included, and one image encode serves its clicks and its concepts.
The backend's own fidelity to transformers' Sam3TrackerModel pipeline is tests/unit/test_sam3_tracker.py's."""

from __future__ import annotations

import numpy as np
import pytest
from reference import decode_rle, encode, random_image, segment_request
from server_process import start_server

from labelgate.models.backend import DecodeItem, SamPrompt
from labelgate.models.sam3.demo import write_sam3_demo_model
from labelgate.models.sam3.torch_backend import Sam3ConceptBackend
from labelgate.v1 import labelgate_pb2 as pb

IMAGE = random_image(11, 96, 128)
CLICKS = {
    "a point": ([(60.0, 40.0, False)], []),
    "a negative click": ([(60.0, 40.0, False), (100.0, 80.0, True)], []),
    "a box": ([], [(10.0, 12.0, 70.0, 60.0)]),
    "two boxes": ([], [(10.0, 12.0, 70.0, 60.0), (50.0, 30.0, 120.0, 90.0)]),
}


@pytest.fixture(scope="module")
def sam3_dir(tmp_path_factory):
    return write_sam3_demo_model(tmp_path_factory.mktemp("sam3") / "sam3-demo")


@pytest.fixture(scope="module")
def server(demo_weights, sam3_dir, tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("sam3-clicks-server"), demo_weights, "--model", f"concepts=sam3:{sam3_dir}")
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def backend(sam3_dir):
    return Sam3ConceptBackend.from_pretrained(sam3_dir, name="concepts")


@pytest.fixture(scope="module")
def features(backend):
    return backend.encode([IMAGE])[0]


def _expected(backend, features, points, boxes, multimask, mask_input=None):
    prompt = SamPrompt(np.array([(x, y) for x, y, _ in points], np.float32).reshape(-1, 2),
                       np.array([0 if negative else 1 for *_, negative in points], np.int32),
                       np.array(boxes, np.float32).reshape(-1, 4), multimask, mask_input)
    [decoded] = backend.decode([DecodeItem(features, prompt)])
    return decoded


def _assert_same(objects, decoded):
    assert len(objects) == decoded.masks.shape[0]
    for obj, masks, scores in zip(objects, decoded.masks, decoded.scores):
        assert len(obj.masks) == len(masks)
        for message, mask, score in zip(obj.masks, masks, scores):
            np.testing.assert_array_equal(decode_rle(message), mask)
            assert message.score == score  # a float32 carried in a float32 field


@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "one mask"])
@pytest.mark.parametrize("name", list(CLICKS))
def test_clicks_on_a_sam3_model_equal_its_backend(stub, backend, features, name, multimask):
    points, boxes = CLICKS[name]
    response = stub.Segment(segment_request(pb.Image(data=encode(IMAGE)), points, boxes, multimask, model="concepts"),
                            timeout=60)
    _assert_same(response.objects, _expected(backend, features, points, boxes, multimask))


def test_a_refined_click_equals_the_backend_with_that_mask_input(stub, backend, features):
    points, _ = CLICKS["a point"]
    first = stub.Segment(segment_request(pb.Image(data=encode(IMAGE)), points, [], True, model="concepts"), timeout=60)
    expected_first = _expected(backend, features, points, [], True)
    chosen = int(np.argmax(expected_first.scores[0]))
    mask_id = first.objects[0].masks[chosen].mask_id
    assert mask_id
    clicks = points + [(100.0, 80.0, True)]
    refined = stub.Segment(segment_request(pb.Image(image_id=first.image_id), clicks, [], False, model="concepts",
                                           refine_mask_id=mask_id), timeout=60)
    mask_input = expected_first.low_res_logits[0, chosen][None, None]
    _assert_same(refined.objects, _expected(backend, features, clicks, [], False, mask_input))


def test_one_encode_serves_clicks_and_concepts(stub):
    image = random_image(12, 80, 100)  # not encoded by any other test
    click = stub.Segment(segment_request(pb.Image(data=encode(image)), [(30.0, 20.0, False)], [], False, model="concepts"),
                         timeout=60)
    concept = stub.Segment(pb.SegmentRequest(image=pb.Image(image_id=click.image_id), text="cat", model="concepts",
                                             box_threshold=0.001), timeout=60)
    assert not click.cache_hit and concept.cache_hit
    again = stub.Segment(segment_request(pb.Image(image_id=click.image_id), [(50.0, 40.0, False)], [], False,
                                         model="concepts"), timeout=60)
    assert again.cache_hit


def test_embed_and_list_models_name_the_sam3_model_for_clicks(stub):
    embedded = stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(random_image(13, 64, 64))), model="concepts"), timeout=60)
    assert embedded.image_id and not embedded.cache_hit
    [model] = [m for m in stub.ListModels(pb.ListModelsRequest(), timeout=30).models if m.name == "concepts"]
    assert {"segment_prompts", "segment_concepts"} <= set(model.capabilities)

