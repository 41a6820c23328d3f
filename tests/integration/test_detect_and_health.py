"""Detect equals the transformers post-processing; ListModels, health and reflection are served."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agreement import assert_detections_agree, fidelity_first, grounding_run
from labelgate.v1 import labelgate_pb2 as pb
from reference import encode, grounding_dino_reference, random_image

# Images whose reference query choice is well clear of the top-k cutoff (agreement.py), on every
# ATEN_CPU_CAPABILITY: then Detect can be compared with transformers query by query.
IMAGES = [random_image(25, 240, 320), random_image(22, 333, 500), random_image(23, 500, 260)]
CAPTIONS = ["cat . dog .", "a red car . person ."]


@pytest.fixture(scope="module")
def reference(demo_weights):
    return grounding_dino_reference(demo_weights)


@pytest.mark.parametrize("image_index", range(len(IMAGES)))
@pytest.mark.parametrize("caption", CAPTIONS)
@pytest.mark.parametrize("thresholds", fidelity_first([(0.35, 0.25), (0.0, 0.0), (0.9, 0.5)]))
def test_detect_matches_transformers_post_processing(server, reference, image_index, caption, thresholds):
    image = IMAGES[image_index]
    box_threshold, text_threshold = thresholds
    response = server.stub().Detect(
        pb.DetectRequest(image=pb.Image(data=encode(image)), text=caption, box_threshold=box_threshold, text_threshold=text_threshold)
    )
    # 0 in the request means "the default" (0.35 / 0.25).
    run = grounding_run(*reference, image, caption)

    assert (response.height, response.width) == image.shape[:2]
    got = [((d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max), d.score, d.label) for d in response.detections]
    assert_detections_agree(got, run, box_threshold or 0.35, text_threshold or 0.25)


def test_defaults_find_something_with_the_demo_model(server):
    response = server.stub().Detect(pb.DetectRequest(image=pb.Image(data=encode(IMAGES[0])), text="cat . dog ."))
    assert len(response.detections) > 0


def test_detect_by_image_id_after_embed(server):
    stub = server.stub()
    embedded = stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(IMAGES[1]))))
    by_id = stub.Detect(pb.DetectRequest(image=pb.Image(image_id=embedded.image_id), text="person ."))
    by_bytes = stub.Detect(pb.DetectRequest(image=pb.Image(data=encode(IMAGES[1])), text="person ."))
    assert by_id.image_id == embedded.image_id == by_bytes.image_id
    assert [d.score for d in by_id.detections] == [d.score for d in by_bytes.detections]


def test_list_models_names_every_demo_model(server):
    models = server.stub().ListModels(pb.ListModelsRequest()).models
    kinds = {m.kind: m for m in models}
    assert set(kinds) == {"sam2", "grounding_dino", "sam3", "edgetam"}  # --demo-weights: the pair, SAM 3, EdgeTAM
    assert all(m.version and m.device == "cpu" for m in models)
    # The pair stays the default; SAM 3 is the only concept model, so the default for concepts.
    assert [m.name for m in models if m.is_default] == ["sam2_demo", "grounding_dino_demo", "sam3"]
    assert kinds["sam2"].name == "sam2_demo" and kinds["edgetam"].name == "edgetam"


def test_model_names_from_list_models_are_accepted(server):
    stub = server.stub()
    models = {m.kind: m.name for m in stub.ListModels(pb.ListModelsRequest()).models}
    response = stub.Segment(
        pb.SegmentRequest(image=pb.Image(data=encode(IMAGES[0])), text="cat .", model=models["sam2"],
                          detector_model=models["grounding_dino"])
    )
    assert response.image_id


def test_health_reports_serving_for_the_server_and_the_service(server):
    assert server.health("") == health_pb2.HealthCheckResponse.SERVING
    assert server.health("labelgate.v1.Labelgate") == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(server):
    with server.channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in next(responses).list_services_response.service}
    assert {"labelgate.v1.Labelgate", "grpc.health.v1.Health"} <= names


def test_metrics_count_requests_by_method_and_code(server):
    stub = server.stub()
    before_ok = server.metric("labelgate_requests_total", method="ListModels", code="OK")
    stub.ListModels(pb.ListModelsRequest())
    before_bad = server.metric("labelgate_requests_total", method="Detect", code="INVALID_ARGUMENT")
    with pytest.raises(grpc.RpcError):
        stub.Detect(pb.DetectRequest(image=pb.Image(data=b"nope"), text="cat ."))
    assert server.metric("labelgate_requests_total", method="ListModels", code="OK") == before_ok + 1
    assert server.metric("labelgate_requests_total", method="Detect", code="INVALID_ARGUMENT") == before_bad + 1
    assert server.metric("labelgate_request_seconds_count", method="ListModels") >= 1
