"""SAM 3 concept segmentation served by name through gRPC (a tiny random-weight SAM 3 next to the demo
pair): Segment(text) and exemplars on a `sam3` model answer what the backend itself computes on the
same image, from cached vision features; mistakes get clear statuses. The backend's own fidelity to
transformers' Sam3Processor + Sam3Model pipeline is tests/unit/test_sam3_backend.py's."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from reference import decode_rle, encode, random_image
from server_process import start_server
from tolerances import float32_rounding

from labelgate.models.backend import ConceptItem
from labelgate.models.instance_nms import suppress
from labelgate.models.sam3.demo import write_sam3_demo_model
from labelgate.models.sam3.torch_backend import Sam3ConceptBackend
from labelgate.server.service import CONCEPT_MASK_THRESHOLD
from labelgate.v1 import labelgate_pb2 as pb

THRESHOLD = 0.001  # random weights score low: keep every instance the model proposes
IMAGE = random_image(7, 96, 128)
EXEMPLAR = (10.0, 12.0, 60.0, 50.0)


@pytest.fixture(scope="module")
def sam3_dir(tmp_path_factory):
    return write_sam3_demo_model(tmp_path_factory.mktemp("sam3") / "sam3-demo")


@pytest.fixture(scope="module")
def server(demo_weights, sam3_dir, tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("sam3-server"), demo_weights, "--model", f"concepts=sam3:{sam3_dir}")
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def backend(sam3_dir):
    return Sam3ConceptBackend.from_pretrained(sam3_dir, name="concepts")


def _expected(backend, phrase: str, boxes=(), labels=()):
    features = backend.encode([IMAGE])[0]
    item = ConceptItem(features, phrase, np.float32(THRESHOLD).item(), CONCEPT_MASK_THRESHOLD,
                       np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64))
    [found] = backend.segment_concepts([item])
    return found


def _assert_same(objects, instances, nms_iou: float = 0.5, max_instances: int = 100):
    """The server's objects are the backend's instances after mask-IoU NMS (defaults 0.5 and 100)."""
    assert instances
    instances = suppress(instances, nms_iou, max_instances)
    assert len(objects) == len(instances) > 0
    for obj, instance in zip(objects, instances):
        np.testing.assert_array_equal(decode_rle(obj.masks[0]), instance.mask)
        assert obj.label == instance.label
        assert abs(obj.detection_score - instance.score) <= float32_rounding(instance.score)
        box = (obj.prompt_box.x_min, obj.prompt_box.y_min, obj.prompt_box.x_max, obj.prompt_box.y_max)
        assert all(abs(a - b) <= float32_rounding(abs(b)) for a, b in zip(box, instance.box))


def test_text_on_a_concept_model_returns_every_instance_of_each_phrase(stub, backend):
    request = pb.SegmentRequest(image=pb.Image(data=encode(IMAGE)), text="cat . dog .", model="concepts", box_threshold=THRESHOLD)
    response = stub.Segment(request, timeout=60)
    _assert_same(response.objects, _expected(backend, "cat") + _expected(backend, "dog"))
    again = stub.Segment(pb.SegmentRequest(image=pb.Image(image_id=response.image_id), text="person .", model="concepts",
                                           box_threshold=THRESHOLD), timeout=60)
    assert again.cache_hit and not response.cache_hit  # a second concept reuses the vision features
    _assert_same(again.objects, _expected(backend, "person"))


def test_nms_and_the_instance_cap_are_set_per_request(stub, backend):
    def segment(**fields):
        request = pb.SegmentRequest(image=pb.Image(data=encode(IMAGE)), text="cat . dog .", model="concepts",
                                    box_threshold=THRESHOLD, **fields)
        return stub.Segment(request, timeout=60).objects

    expected = _expected(backend, "cat") + _expected(backend, "dog")
    _assert_same(segment(nms_iou_threshold=1.0), expected, nms_iou=1.0)  # 1.0 keeps every instance, best first
    _assert_same(segment(nms_iou_threshold=0.05), expected, nms_iou=0.05)
    _assert_same(segment(max_instances=1), expected, max_instances=1)
    assert len(segment(max_instances=1)) == 1


def test_exemplar_boxes_alone_and_with_text(stub, backend):
    exemplars = [pb.Exemplar(box=pb.Box(x_min=EXEMPLAR[0], y_min=EXEMPLAR[1], x_max=EXEMPLAR[2], y_max=EXEMPLAR[3])),
                 pb.Exemplar(box=pb.Box(x_min=70, y_min=60, x_max=120, y_max=90), negative=True)]
    boxes, labels = [EXEMPLAR, (70, 60, 120, 90)], [1, 0]
    alone = stub.Segment(pb.SegmentRequest(image=pb.Image(data=encode(IMAGE)), exemplars=exemplars, model="concepts",
                                           box_threshold=THRESHOLD), timeout=60)
    _assert_same(alone.objects, _expected(backend, "", boxes, labels))
    with_text = stub.Segment(pb.SegmentRequest(image=pb.Image(data=encode(IMAGE)), text="car", exemplars=exemplars,
                                               model="concepts", box_threshold=THRESHOLD), timeout=60)
    _assert_same(with_text.objects, _expected(backend, "car", boxes, labels))


def test_text_without_a_concept_model_named_still_goes_to_the_detector(stub):
    response = stub.Segment(pb.SegmentRequest(image=pb.Image(data=encode(IMAGE)), text="cat .", box_threshold=0.01,
                                              text_threshold=0.01), timeout=60)
    assert all(len(obj.masks) == 1 for obj in response.objects)  # Grounding DINO + SAM 2, as before


@pytest.mark.parametrize("fields, code, words", [
    ({"exemplars": [pb.Exemplar(box=pb.Box(x_min=1, y_min=1, x_max=5, y_max=5))], "model": "sam2_demo"},
     grpc.StatusCode.INVALID_ARGUMENT, "cannot give a mask for every instance"),
    ({"exemplars": [pb.Exemplar(box=pb.Box(x_min=5, y_min=1, x_max=1, y_max=5))], "model": "concepts"},
     grpc.StatusCode.INVALID_ARGUMENT, "exemplar 0 is empty or inverted"),
    ({"exemplars": [pb.Exemplar(box=pb.Box(x_min=1, y_min=1, x_max=500, y_max=5))], "model": "concepts"},
     grpc.StatusCode.INVALID_ARGUMENT, "exemplar 0"),
    ({"exemplars": [pb.Exemplar(box=pb.Box(x_min=1, y_min=1, x_max=5, y_max=5))], "points": [pb.Point(x=1, y=1)],
      "model": "concepts"}, grpc.StatusCode.INVALID_ARGUMENT, "cannot be combined with points or boxes"),
    ({"text": "cat", "model": "concepts", "max_instances": 5000}, grpc.StatusCode.INVALID_ARGUMENT, "max_instances 5000"),
    ({"text": "cat", "model": "concepts", "nms_iou_threshold": 2.0}, grpc.StatusCode.INVALID_ARGUMENT,
     "nms_iou_threshold must be between 0 and 1"),
])
def test_concept_mistakes_are_the_callers(stub, fields, code, words):
    with pytest.raises(grpc.RpcError) as raised:
        stub.Segment(pb.SegmentRequest(image=pb.Image(data=encode(IMAGE)), **fields), timeout=30)
    assert raised.value.code() == code and words in raised.value.details(), raised.value.details()
