"""The synchronous labelgate client."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import grpc

from labelgate.client import messages
from labelgate.client.base import CLIENT_TIMEOUT, ClientBase, Timeout
from labelgate.client.errors import LabelgateClientError
from labelgate.client.images import ImageId, ImageLike
from labelgate.client.results import (
    DetectResult,
    EmbedResult,
    Mask,
    ModelInfo,
    SegmentResult,
    detect_result_from_pb,
    embed_result_from_pb,
    model_info_from_pb,
    segment_result_from_pb,
)
from labelgate.client.retry import Attempts
from labelgate.client.transport import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TARGET, channel_options, open_channel
from labelgate.v1 import labelgate_pb2 as pb

__all__ = ["Client", "DEFAULT_MAX_MESSAGE_BYTES", "DEFAULT_TARGET", "channel_options"]


class Client(ClientBase):
    """A blocking client for one labelgate server.

    ``image`` arguments take a file path, encoded bytes, a PIL image, a numpy H x W x 3 uint8
    RGB array, or an ``ImageId``. The client remembers the image_id the server returns for each
    image it sends (by a hash of the encoded bytes, for the last `image_id_cache_size` images),
    and later sends only the id for the same image; if the server has forgotten it (NOT_FOUND),
    the bytes are sent again once. UNAVAILABLE is retried with backoff (see ``retry``); every
    failed call raises ``LabelgateClientError``. TLS, a bearer token and the other options are
    described in ``ClientBase``; ``Client.from_env()`` reads them from LABELGATE_* variables.

    Thread-safe: one client can be shared by several threads.

        with Client("127.0.0.1:50051") as client:
            result = client.segment("photo.jpg", points=[(120, 80)])
            mask = result.objects[0].best.to_numpy()
    """

    def _open_channel(self, max_message_bytes: int) -> grpc.Channel:
        return open_channel(self.target, self.security, max_message_bytes)

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- RPCs ----------------------------------------------------------------------------------

    def embed(self, image: ImageLike | ImageId, model: str = "", *, timeout: Timeout = CLIENT_TIMEOUT) -> EmbedResult:
        """Compute and cache the SAM 2 features of `image`, so later segment calls are fast."""
        request = messages.embed_request(model=model)
        return embed_result_from_pb(self._call_with_image("Embed", image, request, timeout))

    def segment(self, image: ImageLike | ImageId, points: Iterable[Sequence] = (), boxes: Iterable[Sequence] = (),
                text: str = "", multimask: bool = False, formats: Iterable[str] = ("coco_rle",),
                box_threshold: float = 0.0, text_threshold: float = 0.0, model: str = "",
                detector_model: str = "", *, exemplars: Iterable[Sequence] = (), nms_iou_threshold: float = 0.0,
                max_instances: int = 0, refine: Mask | str | None = None,
                timeout: Timeout = CLIENT_TIMEOUT) -> SegmentResult:
        """SAM 2 masks for clicks and/or boxes, or for the Grounding DINO detections of `text`;
        with `model` naming a concept model (kind sam3), every instance of `text` and/or `exemplars`.

        points: (x, y) or (x, y, negative) in pixels; boxes: (x_min, y_min, x_max, y_max).
        Several boxes without points give one object each; points (with at most one box) give
        one object. `text` ("cat . dog .") cannot be combined with points or boxes.
        formats: any of "coco_rle", "polygons", "png". Thresholds: 0 = the server's defaults
        (for a concept model, box_threshold is the instance score threshold).
        exemplars: boxes (x_min, y_min, x_max, y_max), "objects like this", or with a fifth item
        True or "neg", "not like this"; for a concept model, alone or with `text`.
        nms_iou_threshold, max_instances: for a concept model, instances of one phrase overlapping
        more than this mask IoU are one, and at most this many come back (0 = the server's defaults).
        refine: a Mask of an earlier result on this image (or its mask_id): SAM 2 starts from it.
        Send all the clicks, the earlier ones too, and at most one box.
        timeout: seconds for this call, retries included (default: the client's).
        """
        request = messages.segment_request(
            points=points, boxes=boxes, text=text, multimask=multimask, formats=formats,
            box_threshold=box_threshold, text_threshold=text_threshold, model=model, detector_model=detector_model,
            refine=refine, exemplars=exemplars, nms_iou_threshold=nms_iou_threshold, max_instances=max_instances,
        )
        return segment_result_from_pb(self._call_with_image("Segment", image, request, timeout))

    def detect(self, image: ImageLike | ImageId, text: str, box_threshold: float = 0.0, text_threshold: float = 0.0,
               model: str = "", *, timeout: Timeout = CLIENT_TIMEOUT) -> DetectResult:
        """Grounding DINO boxes for a caption such as "car . person ."; thresholds: 0 = defaults."""
        request = messages.detect_request(text=text, box_threshold=box_threshold, text_threshold=text_threshold,
                                          model=model)
        return detect_result_from_pb(self._call_with_image("Detect", image, request, timeout))

    def track(self, video, prompts=(), **options):
        """Track objects through a video: `video` is a video file (path or bytes) or a list of frames,
        `prompts` are `tracking.ObjectPrompt`s (or a function of the decoded `tracking.OpenedVideo` that
        returns them, for prompts relative to its size); yields a `tracking.TrackedFrame` per frame as the
        server computes it (options: direction, start_frame, max_frames, formats, model, timeout).
        Text to tracks: `text="car . person ."` adds one object per instance found on `text_frame`
        (default 0), numbered on from the prompts' ids (options text_model, detector_model,
        box_threshold, text_threshold, max_objects: see `VideoSession.add_text`)."""
        from labelgate.client.tracking import track

        return track(self, video, prompts, **options)

    def open_video(self, video, *, model: str = "", stream: bool = False, timeout: float | None = None):
        """An open `video_session.VideoSession` on `video`, for prompts and corrections over several
        Propagate calls (``with client.open_video("clip.mp4") as session: ...``); a session the server
        loses is reopened and its prompts replayed. `stream`: frames will be appended
        (`session.append_frames`) and tracked as they come."""
        from labelgate.client.video_session import VideoSession

        return VideoSession([self], video, model=model, stream=stream, timeout=timeout).open()

    def list_models(self, *, timeout: Timeout = CLIENT_TIMEOUT) -> list[ModelInfo]:
        response = self._invoke("ListModels", pb.ListModelsRequest(), self._attempts(timeout))
        return [model_info_from_pb(info) for info in response.models]

    # --- plumbing ------------------------------------------------------------------------------

    def _call_with_image(self, method: str, image: ImageLike | ImageId, request, timeout: Timeout):
        """The one place that decides whether an image goes by id or by bytes (see image_ids):
        `request` is complete but for its image. A resend shares the call's deadline."""
        attempts = self._attempts(timeout)
        upload = self._image_ids.prepare(image)
        try:
            response = self._invoke(method, messages.with_image(request, upload.message()), attempts)
        except LabelgateClientError as error:
            if not upload.should_resend(error):
                raise
            response = self._invoke(method, messages.with_image(request, upload.message()), attempts)
        upload.remember(response.image_id)
        return response

    def _invoke(self, method: str, request, attempts: Attempts):
        """One unary RPC, retried as `attempts` allows; grpc errors become LabelgateClientError."""
        call = getattr(self._stub, method)
        while True:
            try:
                return call(request, timeout=attempts.timeout(), metadata=self._metadata)
            except grpc.RpcError as rpc_error:
                error = LabelgateClientError.from_rpc_error(rpc_error, method)
            delay = attempts.retry_delay(error)
            if delay is None:
                raise error
            time.sleep(delay)
