"""Client <-> a fake in-process labelgate server (no models): image_id reuse, the NOT_FOUND
resend, error wrapping, and result conversion over real gRPC."""

from __future__ import annotations

import hashlib
from concurrent import futures

import grpc
import numpy as np
import pycocotools.mask
import pytest

from labelgate.client import Client, ImageId, LabelgateClientError
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc


class FakeLabelgate(labelgate_pb2_grpc.LabelgateServicer):
    """Ids are hashes of the bytes; `forget()` drops them all, as an eviction or restart would."""

    def __init__(self):
        self.known: dict[str, bytes] = {}
        self.requests: list = []

    def forget(self) -> None:
        self.known.clear()

    def _resolve(self, image: pb.Image, context) -> str:
        if image.WhichOneof("source") == "data":
            image_id = "img_" + hashlib.blake2b(image.data, digest_size=16).hexdigest()
            self.known[image_id] = image.data
            return image_id
        if image.image_id not in self.known:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown image_id {image.image_id!r}")
        return image.image_id

    def Embed(self, request, context):
        self.requests.append(request)
        return pb.EmbedResponse(image_id=self._resolve(request.image, context), width=4, height=3)

    def Segment(self, request, context):
        self.requests.append(request)
        image_id = self._resolve(request.image, context)
        if any(p.x > 4 for p in request.points):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "point 0 is outside the 4 x 3 image")
        mask = np.zeros((3, 4), np.uint8)
        mask[1:, 2:] = 1
        rle = pycocotools.mask.encode(np.asfortranarray(mask))
        masks = [pb.Mask(score=0.9, area=4, bbox=pb.Box(x_min=2, y_min=1, x_max=4, y_max=3),
                         rle=pb.CocoRle(size=rle["size"], counts=rle["counts"].decode()))]
        return pb.SegmentResponse(image_id=image_id, width=4, height=3, objects=[pb.ObjectMasks(masks=masks)])

    def Detect(self, request, context):
        self.requests.append(request)
        box = pb.Box(x_min=0, y_min=0, x_max=2, y_max=2)
        return pb.DetectResponse(image_id=self._resolve(request.image, context), width=4, height=3,
                                 detections=[pb.Detection(box=box, score=0.5, label=request.text.strip(" ."))])

    def ListModels(self, request, context):
        return pb.ListModelsResponse(models=[pb.ModelInfo(name="m", kind="sam2", version="v", device="cpu", is_default=True)])


@pytest.fixture
def fake():
    servicer = FakeLabelgate()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    labelgate_pb2_grpc.add_LabelgateServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with Client(f"127.0.0.1:{port}", timeout=10) as client:
        yield servicer, client
    server.stop(None)


def _sources(servicer: FakeLabelgate) -> list[str]:
    return [request.image.WhichOneof("source") for request in servicer.requests]


IMAGE = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)


def test_second_call_sends_only_the_id(fake):
    servicer, client = fake
    first = client.segment(IMAGE, points=[(3, 2)])
    second = client.segment(IMAGE.copy(), points=[(3, 2)])
    client.detect(IMAGE, "cat .")
    assert first.image_id == second.image_id
    assert _sources(servicer) == ["data", "image_id", "image_id"]
    assert servicer.requests[1].image.image_id == first.image_id
    assert first.objects[0].best.to_numpy().shape == (3, 4)


def test_forgotten_id_is_resent_once_with_the_bytes(fake):
    servicer, client = fake
    client.embed(IMAGE)
    servicer.forget()
    result = client.segment(IMAGE, points=[(1, 1)])
    assert _sources(servicer) == ["data", "image_id", "data"]
    assert result.image_id in servicer.known
    client.segment(IMAGE, points=[(1, 1)])
    assert _sources(servicer)[-1] == "image_id"


def test_explicit_image_id(fake):
    servicer, client = fake
    image_id = client.embed(IMAGE).image_id
    assert client.detect(ImageId(image_id), "dog .").detections[0].label == "dog"
    with pytest.raises(LabelgateClientError) as error:
        client.detect(ImageId("img_" + "0" * 32), "dog .")
    assert error.value.code == grpc.StatusCode.NOT_FOUND and "unknown image_id" in error.value.details
    assert _sources(servicer) == ["data", "image_id", "image_id"]  # nothing to resend for an explicit id


def test_errors_are_wrapped_and_do_not_trigger_a_resend(fake):
    servicer, client = fake
    client.embed(IMAGE)
    with pytest.raises(LabelgateClientError) as error:
        client.segment(IMAGE, points=[(10, 1)])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and error.value.method == "Segment"
    assert _sources(servicer) == ["data", "image_id"]


def test_list_models(fake):
    _, client = fake
    [model] = client.list_models()
    assert (model.name, model.kind, model.is_default) == ("m", "sam2", True)


def test_unreachable_server():
    with Client("127.0.0.1:1", timeout=5) as client:
        with pytest.raises(LabelgateClientError) as error:
            client.list_models()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE and error.value.unreachable
