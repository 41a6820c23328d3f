"""A fake in-process labelgate server (no models) for the client tests: real gRPC, scripted answers.

Ids are hashes of the bytes; `forget()` drops them all, as an eviction or restart would. Every call
is recorded with its metadata and remaining deadline; `fail_next` makes the next calls fail with
the given status codes, in order.
"""

from __future__ import annotations

import hashlib
from concurrent import futures
from contextlib import contextmanager

import grpc
import numpy as np
import pycocotools.mask

from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc


FAKE_MASK_ID = "mask_" + "5" * 32


class FakeLabelgate(labelgate_pb2_grpc.LabelgateServicer):
    def __init__(self):
        self.known: dict[str, bytes] = {}
        self.requests: list = []
        self.metadata: list[dict[str, str]] = []
        self.time_remaining: list[float | None] = []
        self.fail_next: list[grpc.StatusCode] = []

    def forget(self) -> None:
        self.known.clear()

    def _begin(self, request, context) -> None:
        self.requests.append(request)
        self.metadata.append({key: value for key, value in context.invocation_metadata()})
        self.time_remaining.append(context.time_remaining())
        if self.fail_next:
            code = self.fail_next.pop(0)
            context.abort(code, f"scripted {code.name}")

    def _resolve(self, image: pb.Image, context) -> str:
        if image.WhichOneof("source") == "data":
            image_id = "img_" + hashlib.blake2b(image.data, digest_size=16).hexdigest()
            self.known[image_id] = image.data
            return image_id
        if image.image_id not in self.known:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown image_id {image.image_id!r}")
        return image.image_id

    def Embed(self, request, context):
        self._begin(request, context)
        return pb.EmbedResponse(image_id=self._resolve(request.image, context), width=4, height=3)

    def Segment(self, request, context):
        self._begin(request, context)
        image_id = self._resolve(request.image, context)
        if any(p.x > 4 for p in request.points):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "point 0 is outside the 4 x 3 image")
        mask = np.zeros((3, 4), np.uint8)
        mask[1:, 2:] = 1
        rle = pycocotools.mask.encode(np.asfortranarray(mask))
        masks = [pb.Mask(score=0.9, area=4, bbox=pb.Box(x_min=2, y_min=1, x_max=4, y_max=3),
                         rle=pb.CocoRle(size=rle["size"], counts=rle["counts"].decode()), mask_id=FAKE_MASK_ID)]
        return pb.SegmentResponse(image_id=image_id, width=4, height=3, objects=[pb.ObjectMasks(masks=masks)])

    def Detect(self, request, context):
        self._begin(request, context)
        box = pb.Box(x_min=0, y_min=0, x_max=2, y_max=2)
        return pb.DetectResponse(image_id=self._resolve(request.image, context), width=4, height=3,
                                 detections=[pb.Detection(box=box, score=0.5, label=request.text.strip(" ."))])

    def ListModels(self, request, context):
        self._begin(request, context)
        return pb.ListModelsResponse(models=[pb.ModelInfo(name="m", kind="sam2", version="v", device="cpu", is_default=True)])

    def sources(self) -> list[str]:
        """Per image call: whether the image went as "data" or "image_id"."""
        return [r.image.WhichOneof("source") for r in self.requests if hasattr(r, "image")]


@contextmanager
def serve_fake():
    """(servicer, "127.0.0.1:PORT") of a running fake server."""
    servicer = FakeLabelgate()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    labelgate_pb2_grpc.add_LabelgateServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(None)
