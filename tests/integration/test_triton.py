"""labelgate in front of a real tritonserver (python-flavor repository of the demo models' ONNX graphs):
the public gRPC API gives the torch results, Triton batches concurrent requests, features are
cached like torch ones, and a Triton outage is UNAVAILABLE / NOT_SERVING until it comes back."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from agreement import assert_detections_agree, assert_mask_agrees, assert_score_agrees, fidelity_first, grounding_run
from labelgate.models.export.graphs import SAM2_IMAGE_ENCODER
from labelgate.models.triton.connection import TritonConnection
from labelgate.models.triton.sam2_backend import ENCODER_OUTPUTS
from labelgate.core.errors import InvalidInput
from labelgate.v1 import labelgate_pb2 as pb
from reference import (
    decode_rle,
    encode,
    grounding_dino_reference,
    predictor_masks,
    random_image,
    scaled_prompt,
    segment_request,
)
from server_process import start_server
from tolerances import SAM2_DEMO_DEPTH
from triton_server import TritonServer

GDINO_SIZE = (320, 480)  # the fixed input size the demo Grounding DINO graph was exported at
IMAGES = {"landscape": random_image(31, 240, 360), "portrait": random_image(32, 401, 223)}
# (points [(x, y, negative)], boxes [(x1, y1, x2, y2)]) in fractions of the image size.
PROMPTS = {
    "points": ([(0.3, 0.4, False), (0.7, 0.6, True), (0.2, 0.8, False)], []),
    "box": ([], [(0.1, 0.2, 0.6, 0.9)]),
    "point and box": ([(0.4, 0.5, False)], [(0.2, 0.2, 0.8, 0.8)]),
    "several boxes": ([], [(0.1, 0.2, 0.6, 0.9), (0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.7, 0.6)]),
}


@pytest.fixture(scope="module")
def triton(demo_onnx, tmp_path_factory):
    from labelgate.cli.main import main

    repository = tmp_path_factory.mktemp("triton-repo")
    assert main(["export", "triton-repo", "--onnx", str(demo_onnx), "--out", str(repository), "--flavor", "python",
                 "--onnxruntime-threads", "1"]) == 0
    running = TritonServer(repository, tmp_path_factory.mktemp("triton")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(demo_weights, triton, tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("server"), demo_weights, "--backend", "triton", "--triton-url", triton.url)
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def detector_reference(demo_weights):
    """transformers alone (the torch path's processor and model), with images resized to the graph's size."""
    processor, model = grounding_dino_reference(demo_weights)
    return lambda image, caption: grounding_run(processor, model, image, caption, size=GDINO_SIZE)


def _detections(detections):
    return [((d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max), d.score, d.label) for d in detections]


def _assert_same_masks(response, expected_logits, expected_scores):
    """ONNX Runtime in Triton against PyTorch: other kernels, so within the tolerances of tests/tolerances.py."""
    assert len(response.objects) == expected_logits.shape[0]
    for obj, logits, scores in zip(response.objects, expected_logits, expected_scores):
        assert len(obj.masks) == len(logits)
        for message, mask_logits, score in zip(obj.masks, logits, scores):
            assert_mask_agrees(decode_rle(message), mask_logits, SAM2_DEMO_DEPTH)
            assert_score_agrees(message.score, score, SAM2_DEMO_DEPTH)


@pytest.mark.parametrize("image_name", fidelity_first(sorted(IMAGES)))
@pytest.mark.parametrize("prompt_name", sorted(PROMPTS))
@pytest.mark.parametrize("multimask", [False, True])
def test_segment_through_triton_equals_the_torch_predictor(stub, predictor, image_name, prompt_name, multimask):
    image = IMAGES[image_name]
    points, boxes = scaled_prompt(PROMPTS[prompt_name], image)
    response = stub.Segment(segment_request(pb.Image(data=encode(image)), points, boxes, multimask))
    _assert_same_masks(response, *predictor_masks(predictor, image, points, boxes, multimask, return_logits=True))


@pytest.mark.fidelity
@pytest.mark.parametrize("caption", ["cat . dog .", "a red car . person . tree ."])
@pytest.mark.parametrize("thresholds", [(0.35, 0.25), (0.05, 0.05)])
def test_detect_through_triton_equals_transformers(stub, detector_reference, caption, thresholds):
    image = IMAGES["landscape"]
    response = stub.Detect(pb.DetectRequest(image=pb.Image(data=encode(image)), text=caption,
                                            box_threshold=thresholds[0], text_threshold=thresholds[1]))
    assert len(response.detections) > 0
    assert_detections_agree(_detections(response.detections), detector_reference(image, caption), *thresholds)


@pytest.mark.fidelity
def test_text_segment_through_triton_equals_detect_then_predict(stub, predictor, detector_reference):
    image = IMAGES["portrait"]
    response = stub.Segment(segment_request(pb.Image(data=encode(image)), [], [], text="cat . dog ."))
    boxes = [(o.prompt_box.x_min, o.prompt_box.y_min, o.prompt_box.x_max, o.prompt_box.y_max) for o in response.objects]
    assert boxes
    found = [(box, o.detection_score, o.label) for box, o in zip(boxes, response.objects)]
    assert_detections_agree(found, detector_reference(image, "cat . dog ."), 0.35, 0.25)
    # SAM 2 on the boxes the detector gave: the predictor's masks for them, within tolerance.
    _assert_same_masks(response, *predictor_masks(predictor, image, [], boxes, False, return_logits=True))


def test_list_models_names_the_triton_models(stub, triton):
    models = {m.kind: m for m in stub.ListModels(pb.ListModelsRequest()).models}
    assert models["sam2"].name == "sam2_demo" and models["grounding_dino"].name == "grounding_dino_demo"
    assert all(m.device == f"triton:{triton.url}" and m.version for m in models.values())
    # The Triton SAM 2 serves clicks, not video tracking (that needs the in-process video predictor).
    assert list(models["sam2"].capabilities) == ["segment_prompts"]
    with pytest.raises(grpc.RpcError) as caught:
        stub.OpenVideo(pb.OpenVideoRequest(model="sam2_demo"))
    assert caught.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), caught.value.details()


def test_a_click_on_cached_features_calls_only_the_triton_decoder(stub, triton):
    encoder, decoder = "sam2_image_encoder", "sam2_mask_decoder"
    embedded = stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(random_image(33, 200, 300)))))
    encodes, decodes = triton.settled_inference_count(encoder), triton.settled_inference_count(decoder)

    clicks = [stub.Segment(segment_request(pb.Image(image_id=embedded.image_id), [(50 + i, 60, False)], [])) for i in range(3)]

    assert all(click.cache_hit for click in clicks)
    assert triton.settled_inference_count(decoder) == decodes + 3
    assert triton.settled_inference_count(encoder) == encodes


def test_concurrent_requests_are_batched_by_triton(stub, triton):
    embedded = stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(random_image(34, 240, 320)))))
    inferences = triton.settled_inference_count("sam2_mask_decoder")
    before = triton.batch_sizes("sam2_mask_decoder")

    def click(index):
        return stub.Segment(segment_request(pb.Image(image_id=embedded.image_id), [(20 + 10 * index, 40, False)], []))

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(click, range(16)))

    assert all(len(r.objects) == 1 for r in responses)
    assert triton.settled_inference_count("sam2_mask_decoder") == inferences + 16
    after = triton.batch_sizes("sam2_mask_decoder")
    batched = {size: count - before.get(size, 0) for size, count in after.items() if size > 1 and count > before.get(size, 0)}
    assert batched, f"no decoder execution with batch size > 1: {after}"


def _wait_for(condition, what: str, timeout_s: float = 90):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s} s waiting for {what}")
        time.sleep(0.25)


def _health(server):
    try:
        return server.health()
    except grpc.RpcError:
        return None


def test_an_input_triton_refuses_is_invalid_input_not_a_server_fault(triton):
    """What the backends get back when Triton refuses a request (here: a shape its config forbids)."""
    connection = TritonConnection(triton.url, timeout_s=60)
    try:
        wrong_size = {"image": np.zeros((1, 3, 8, 8), np.float32)}
        [result] = connection.infer_many(SAM2_IMAGE_ENCODER, [wrong_size], ENCODER_OUTPUTS)
    finally:
        connection.close()
    assert isinstance(result, InvalidInput), result
    assert SAM2_IMAGE_ENCODER in str(result) and "image" in str(result)


def test_triton_down_is_unavailable_naming_it_and_back_serves_again(server, stub, triton):
    """Runs last in this module: it stops and restarts the module's Triton."""
    image_id = stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(random_image(35, 180, 240))))).image_id
    click = segment_request(pb.Image(image_id=image_id), [(100, 90, False)], [])
    assert stub.Segment(click).objects

    triton.stop()
    with pytest.raises(grpc.RpcError) as failure:
        stub.Segment(click)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert triton.url in failure.value.details()
    _wait_for(lambda: _health(server) == health_pb2.HealthCheckResponse.NOT_SERVING, "health NOT_SERVING")

    triton.start()
    _wait_for(lambda: _health(server) == health_pb2.HealthCheckResponse.SERVING, "health SERVING again")
    again = stub.Segment(click)
    assert again.cache_hit and len(again.objects) == 1
    assert stub.Detect(pb.DetectRequest(image=pb.Image(image_id=image_id), text="cat .")).image_id == image_id
