"""The asyncio labelgate client (grpc.aio): the same methods as Client, awaited."""

from __future__ import annotations

import asyncio
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
from labelgate.client.transport import open_aio_channel
from labelgate.v1 import labelgate_pb2 as pb


class AsyncClient(ClientBase):
    """An asyncio client for one labelgate server: the methods, options, image_id reuse,
    retries and errors of ``Client``, awaited. Create it inside the event loop that uses it.
    Reading and encoding images runs in a worker thread, off the event loop.

        async with AsyncClient("127.0.0.1:50051") as client:
            result = await client.segment("photo.jpg", points=[(120, 80)])
            mask = result.objects[0].best.to_numpy()
    """

    def _open_channel(self, max_message_bytes: int) -> grpc.aio.Channel:
        return open_aio_channel(self.target, self.security, max_message_bytes)

    # --- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # --- RPCs (see Client for the arguments) ---------------------------------------------------

    async def embed(self, image: ImageLike | ImageId, model: str = "", *,
                    timeout: Timeout = CLIENT_TIMEOUT) -> EmbedResult:
        request = messages.embed_request(model=model)
        return embed_result_from_pb(await self._call_with_image("Embed", image, request, timeout))

    async def segment(self, image: ImageLike | ImageId, points: Iterable[Sequence] = (),
                      boxes: Iterable[Sequence] = (), text: str = "", multimask: bool = False,
                      formats: Iterable[str] = ("coco_rle",), box_threshold: float = 0.0,
                      text_threshold: float = 0.0, model: str = "", detector_model: str = "", *,
                      exemplars: Iterable[Sequence] = (), nms_iou_threshold: float = 0.0, max_instances: int = 0,
                      refine: Mask | str | None = None, timeout: Timeout = CLIENT_TIMEOUT) -> SegmentResult:
        request = messages.segment_request(
            points=points, boxes=boxes, text=text, multimask=multimask, formats=formats,
            box_threshold=box_threshold, text_threshold=text_threshold, model=model, detector_model=detector_model,
            refine=refine, exemplars=exemplars, nms_iou_threshold=nms_iou_threshold, max_instances=max_instances,
        )
        return segment_result_from_pb(await self._call_with_image("Segment", image, request, timeout))

    async def detect(self, image: ImageLike | ImageId, text: str, box_threshold: float = 0.0,
                     text_threshold: float = 0.0, model: str = "", *,
                     timeout: Timeout = CLIENT_TIMEOUT) -> DetectResult:
        request = messages.detect_request(text=text, box_threshold=box_threshold, text_threshold=text_threshold,
                                          model=model)
        return detect_result_from_pb(await self._call_with_image("Detect", image, request, timeout))

    def track(self, video, prompts=(), **options):
        """As `Client.track`, an async iterator: ``async for frame in client.track(video, prompts)``."""
        from labelgate.client.tracking import track_async

        return track_async(self, video, prompts, **options)

    async def open_video(self, video, *, model: str = "", stream: bool = False, timeout: float | None = None):
        """As `Client.open_video`: ``session = await client.open_video(clip)``, then awaited calls."""
        from labelgate.client.video_session import AsyncVideoSession

        return await AsyncVideoSession([self], video, model=model, stream=stream, timeout=timeout).open()

    async def list_models(self, *, timeout: Timeout = CLIENT_TIMEOUT) -> list[ModelInfo]:
        response = await self._invoke("ListModels", pb.ListModelsRequest(), self._attempts(timeout))
        return [model_info_from_pb(info) for info in response.models]

    # --- plumbing (the same steps as Client's, awaited) ----------------------------------------

    async def _call_with_image(self, method: str, image: ImageLike | ImageId, request, timeout: Timeout):
        attempts = self._attempts(timeout)
        upload = await asyncio.to_thread(self._image_ids.prepare, image)
        try:
            response = await self._invoke(method, messages.with_image(request, upload.message()), attempts)
        except LabelgateClientError as error:
            if not upload.should_resend(error):
                raise
            response = await self._invoke(method, messages.with_image(request, upload.message()), attempts)
        upload.remember(response.image_id)
        return response

    async def _invoke(self, method: str, request, attempts: Attempts):
        call = getattr(self._stub, method)
        while True:
            try:
                return await call(request, timeout=attempts.timeout(), metadata=self._metadata)
            except grpc.RpcError as rpc_error:
                error = LabelgateClientError.from_rpc_error(rpc_error, method)
            delay = attempts.retry_delay(error)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
