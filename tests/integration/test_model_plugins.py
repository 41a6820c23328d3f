"""Model kinds as plugins and several models in one process, through gRPC against real servers:
- a toy kind registered from this test folder (`--plugin FILE`, no edit in labelgate.server) served
  next to SAM 2;
- two SAM 2 models of different configs and a detector, each answering by name, with its own cache;
- a model still loading does not hold back the others."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from reference import decode_rle, encode, predictor_masks, random_image, sam2_predictor, segment_request
from server_process import start_server
from toy_kind import wand_mask

from labelgate.models.demo import SAM2_DEMO_OVERRIDES, write_sam2_demo_checkpoint
from labelgate.v1 import labelgate_pb2 as pb

TOY = str(Path(__file__).with_name("toy_kind.py"))
SAM2_0_CONFIG = "configs/sam2/sam2_hiera_t.yaml"  # SAM 2.0's config, where the demo uses SAM 2.1's
IMAGE = random_image(3, 90, 120)


@pytest.fixture(scope="module")
def sam2_0_checkpoint(tmp_path_factory) -> Path:
    return write_sam2_demo_checkpoint(tmp_path_factory.mktemp("sam2_0") / "sam2_0_demo.pt", seed=1, config=SAM2_0_CONFIG)


@pytest.fixture(scope="module")
def fleet(demo_weights, sam2_0_checkpoint, tmp_path_factory):
    """One process: the demo pair, a second SAM 2 (SAM 2.0 config), and the toy wand."""
    overrides = ";".join(SAM2_DEMO_OVERRIDES)
    running = start_server(
        tmp_path_factory.mktemp("fleet"), demo_weights, "--plugin", TOY,
        "--model", f"sam2_0=sam2:{sam2_0_checkpoint},config={SAM2_0_CONFIG},overrides={overrides},cache_share=0.25",
        "--model", "wand=wand:,tolerance=0",
    )
    yield running
    assert running.stop() == 0, running.log()


def _segment(stub, model: str, image: pb.Image, x=40.0, y=30.0):
    return stub.Segment(segment_request(image, [(x, y, False)], [], model=model), timeout=60)


def test_list_models_shows_every_model_with_its_kind(fleet):
    models = {m.name: m for m in fleet.stub().ListModels(pb.ListModelsRequest(), timeout=10).models}
    # --demo-weights also serves the demo SAM 3 and EdgeTAM, after the models given with --model.
    assert {name: m.kind for name, m in models.items()} == {
        "sam2_demo": "sam2", "grounding_dino_demo": "grounding_dino", "sam2_0": "sam2", "wand": "wand", "sam3": "sam3",
        "edgetam": "edgetam",
    }
    assert [name for name, m in models.items() if m.is_default] == ["sam2_demo", "grounding_dino_demo", "sam3"]
    assert {name: list(m.capabilities) for name, m in models.items() if name not in ("sam3", "edgetam")} == {
        "sam2_demo": ["segment_prompts", "track_video"], "grounding_dino_demo": ["detect"], "sam2_0": ["segment_prompts", "track_video"],
        "wand": ["segment_prompts"]
    }


def test_the_toy_kind_answers_through_grpc_next_to_sam2(fleet):
    stub = fleet.stub()
    first = _segment(stub, "wand", pb.Image(data=encode(IMAGE)))
    np.testing.assert_array_equal(decode_rle(first.objects[0].masks[0]), wand_mask(IMAGE, 40, 30, 0))
    again = _segment(stub, "wand", pb.Image(image_id=first.image_id), x=5, y=5)
    assert again.cache_hit and not first.cache_hit
    np.testing.assert_array_equal(decode_rle(again.objects[0].masks[0]), wand_mask(IMAGE, 5, 5, 0))


def test_each_sam2_answers_by_name_from_its_own_cache_and_equals_its_predictor(fleet, demo_weights, sam2_0_checkpoint):
    stub, image = fleet.stub(), random_image(11, 70, 100)
    embedded = stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(image)), model="sam2_0"), timeout=60)
    by_id = pb.Image(image_id=embedded.image_id)
    on_sam2_0 = _segment(stub, "sam2_0", by_id)
    on_demo = _segment(stub, "sam2_demo", by_id)
    assert on_sam2_0.cache_hit and not on_demo.cache_hit  # the other model's features are not this one's
    assert _segment(stub, "", by_id).cache_hit  # the default is sam2_demo, now cached
    for response, predictor in ((on_sam2_0, sam2_predictor(demo_weights, sam2_0_checkpoint, SAM2_0_CONFIG)),
                                (on_demo, sam2_predictor(demo_weights))):
        masks, _ = predictor_masks(predictor, image, [(40.0, 30.0, False)], [], multimask=False)
        np.testing.assert_array_equal(decode_rle(response.objects[0].masks[0]), masks[0, 0])
    assert fleet.metric("labelgate_cache_events_total", cache="features/sam2_0", event="hits") >= 1


def test_text_segment_names_its_detector_and_segmenter(fleet):
    stub = fleet.stub()
    request = pb.SegmentRequest(image=pb.Image(data=encode(IMAGE)), text="cat . dog .", model="sam2_0",
                                detector_model="grounding_dino_demo", box_threshold=0.01, text_threshold=0.01)
    response = stub.Segment(request, timeout=60)
    detected = stub.Detect(pb.DetectRequest(image=pb.Image(image_id=response.image_id), text="cat . dog .",
                                            model="grounding_dino_demo", box_threshold=0.01, text_threshold=0.01), timeout=60)
    assert [o.label for o in response.objects] == [d.label for d in detected.detections]


@pytest.mark.parametrize("request_for, code, words", [
    (lambda: ("Segment", segment_request(pb.Image(data=encode(IMAGE)), [(1.0, 1.0, False)], [], model="grounding_dino_demo")),
     grpc.StatusCode.INVALID_ARGUMENT, "cannot give masks from points and boxes"),
    (lambda: ("Detect", pb.DetectRequest(image=pb.Image(data=encode(IMAGE)), text="cat .", model="wand")),
     grpc.StatusCode.INVALID_ARGUMENT, "cannot give boxes from a text prompt"),
    (lambda: ("Segment", segment_request(pb.Image(data=encode(IMAGE)), [(1.0, 1.0, False)], [], model="sam9")),
     grpc.StatusCode.NOT_FOUND, "unknown model 'sam9'"),
])
def test_a_model_without_the_capability_or_name_is_the_callers_mistake(fleet, request_for, code, words):
    method, request = request_for()
    with pytest.raises(grpc.RpcError) as raised:
        getattr(fleet.stub(), method)(request, timeout=30)
    assert raised.value.code() == code and words in raised.value.details()


def test_a_model_still_loading_does_not_hold_back_the_others(demo_weights, tmp_path):
    """The wand's load waits for a file the test creates: meanwhile SAM 2 answers, the wand is
    UNAVAILABLE ("still loading"), and health is NOT_SERVING; then everything serves."""
    release = tmp_path / "release"
    running = start_server(tmp_path / "server", demo_weights, "--plugin", TOY, "--model", f"wand=wand:,wait_for={release}",
                           wait_until_serving=False)
    try:
        stub = running.stub()
        response = _call_while_unavailable(lambda: _segment(stub, "sam2_demo", pb.Image(data=encode(IMAGE))))
        assert response.objects
        with pytest.raises(grpc.RpcError) as raised:
            _segment(stub, "wand", pb.Image(image_id=response.image_id))
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and "still loading" in raised.value.details()
        assert running.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        release.touch()
        running.wait_until_serving()
        assert _segment(stub, "wand", pb.Image(image_id=response.image_id)).objects
    finally:
        assert running.stop() == 0, running.log()


def _call_while_unavailable(call, attempts: int = 600):
    """The call's answer once the server has the model (it answers UNAVAILABLE until then)."""
    for _ in range(attempts):
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        time.sleep(0.1)
    raise AssertionError("the model never became available")
