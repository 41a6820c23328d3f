"""The synchronous labelgate client."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc

from labelgate.client import messages
from labelgate.client.errors import LabelgateClientError
from labelgate.client.image_ids import DEFAULT_CAPACITY, ImageIdCache
from labelgate.client.images import ImageId, ImageLike
from labelgate.client.results import (
    DetectResult,
    EmbedResult,
    ModelInfo,
    SegmentResult,
    detect_result_from_pb,
    embed_result_from_pb,
    model_info_from_pb,
    segment_result_from_pb,
)
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


class Client:
    """A blocking client for one labelgate server.

    ``image`` arguments take a file path, encoded bytes, a PIL image, a numpy H x W x 3 uint8
    RGB array, or an ``ImageId``. The client remembers the image_id the server returns for each
    image it sends (by a hash of the encoded bytes, for the last `image_id_cache_size` images),
    and later sends only the id for the same image; if the server has forgotten it (NOT_FOUND),
    the bytes are sent again once. Every failed RPC raises ``LabelgateClientError``.

    Thread-safe: one client can be shared by several threads.

        with Client("127.0.0.1:50051") as client:
            result = client.segment("photo.jpg", points=[(120, 80)])
            mask = result.objects[0].best.to_numpy()
    """

    def __init__(self, target: str = DEFAULT_TARGET, *, timeout: float | None = 30.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, image_id_cache_size: int = DEFAULT_CAPACITY):
        self.target = target
        self.timeout = timeout
        self._channel = self._open_channel(target, max_message_bytes)
        self._stub = labelgate_pb2_grpc.LabelgateStub(self._channel)
        self._image_ids = ImageIdCache(image_id_cache_size)

    @staticmethod
    def _open_channel(target: str, max_message_bytes: int) -> grpc.Channel:
        return grpc.insecure_channel(target, options=channel_options(max_message_bytes))

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    # --- RPCs ----------------------------------------------------------------------------------

    def embed(self, image: ImageLike | ImageId, model: str = "") -> EmbedResult:
        """Compute and cache the SAM 2 features of `image`, so later segment calls are fast."""
        return embed_result_from_pb(self._call_with_image("Embed", image, messages.embed_request(model=model)))

    def segment(self, image: ImageLike | ImageId, points: Iterable[Sequence] = (), boxes: Iterable[Sequence] = (),
                text: str = "", multimask: bool = False, formats: Iterable[str] = ("coco_rle",),
                box_threshold: float = 0.0, text_threshold: float = 0.0, model: str = "",
                detector_model: str = "") -> SegmentResult:
        """SAM 2 masks for clicks and/or boxes, or for the Grounding DINO detections of `text`.

        points: (x, y) or (x, y, negative) in pixels; boxes: (x_min, y_min, x_max, y_max).
        Several boxes without points give one object each; points (with at most one box) give
        one object. `text` ("cat . dog .") cannot be combined with points or boxes.
        formats: any of "coco_rle", "polygons", "png". Thresholds: 0 = the server's defaults.
        """
        request = messages.segment_request(
            points=points, boxes=boxes, text=text, multimask=multimask, formats=formats,
            box_threshold=box_threshold, text_threshold=text_threshold, model=model, detector_model=detector_model,
        )
        return segment_result_from_pb(self._call_with_image("Segment", image, request))

    def detect(self, image: ImageLike | ImageId, text: str, box_threshold: float = 0.0, text_threshold: float = 0.0,
               model: str = "") -> DetectResult:
        """Grounding DINO boxes for a caption such as "car . person ."; thresholds: 0 = defaults."""
        request = messages.detect_request(text=text, box_threshold=box_threshold, text_threshold=text_threshold,
                                          model=model)
        return detect_result_from_pb(self._call_with_image("Detect", image, request))

    def list_models(self) -> list[ModelInfo]:
        response = self._invoke("ListModels", pb.ListModelsRequest())
        return [model_info_from_pb(info) for info in response.models]

    # --- plumbing ------------------------------------------------------------------------------

    def _call_with_image(self, method: str, image: ImageLike | ImageId, request):
        """The one place that decides whether an image goes by id or by bytes (see image_ids):
        `request` is complete but for its image."""
        upload = self._image_ids.prepare(image)
        try:
            response = self._invoke(method, messages.with_image(request, upload.message()))
        except LabelgateClientError as error:
            if not upload.should_resend(error):
                raise
            response = self._invoke(method, messages.with_image(request, upload.message()))
        upload.remember(response.image_id)
        return response

    def _invoke(self, method: str, request):
        """One unary RPC with the client's timeout; grpc errors become LabelgateClientError."""
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise LabelgateClientError.from_rpc_error(error, method) from None
