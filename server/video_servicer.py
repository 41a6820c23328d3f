"""The video RPCs of the Labelgate service: protobuf <-> `VideoService` objects. A mixin of
`LabelgateServicer`; statuses come from `RpcInterceptor` as for every other RPC."""

from __future__ import annotations

import hashlib

from labelgate.core.errors import NotReady
from labelgate.server.queries import BoxPrompt, ImageRef, PointPrompt
from labelgate.server.security import bearer_token
from labelgate.server.video_text import TextPrompt
from labelgate.server.video_queries import BACKWARD, BOTH, FORWARD, EncodedFrame, ObjectPromptQuery, PropagateQuery, VideoSource
from labelgate.v1 import labelgate_pb2 as pb

_DIRECTIONS = {pb.PROPAGATE_FORWARD: FORWARD, pb.PROPAGATE_BACKWARD: BACKWARD, pb.PROPAGATE_BOTH: BOTH}


class VideoRpcs:
    video = None  # a VideoService, set once the models are loading

    def _video(self):
        if self.video is None:
            raise NotReady("the models are still loading; retry shortly (watch grpc.health.v1 for SERVING)")
        return self.video

    async def OpenVideo(self, request: pb.OpenVideoRequest, context) -> pb.OpenVideoResponse:
        frames = tuple(_image(image) for image in request.frames.frames)
        opened = await self._video().open(VideoSource(video=request.video, frames=frames, stream=request.stream), request.model, _owner(context))
        return pb.OpenVideoResponse(session_id=opened.session_id, frame_count=opened.frame_count, width=opened.width,
                                    height=opened.height, timestamps=opened.timestamps, model=opened.model)

    async def AddPrompts(self, request: pb.AddPromptsRequest, context) -> pb.AddPromptsResponse:
        objects = tuple(
            ObjectPromptQuery(
                object_id=obj.object_id,
                points=tuple(PointPrompt(p.x, p.y, p.negative) for p in obj.points),
                box=BoxPrompt(obj.box.x_min, obj.box.y_min, obj.box.x_max, obj.box.y_max) if obj.HasField("box") else None,
                mask_png=obj.mask_png,
            )
            for obj in request.objects
        )
        text = TextPrompt(request.text, request.text_model, request.detector_model, request.box_threshold,
                          request.text_threshold, request.max_objects)
        frame, found = await self._video().add_prompts(request.session_id, _owner(context), request.frame_index, objects,
                                                        _formats(request.formats), text)
        return pb.AddPromptsResponse(frame=_frame_to_pb(frame), found=[
            pb.FoundObject(object_id=obj.object_id, label=obj.label, score=obj.score) for obj in found])

    async def Propagate(self, request: pb.PropagateRequest, context):
        query = PropagateQuery(
            start_frame=request.start_frame if request.HasField("start_frame") else None,
            direction=_DIRECTIONS.get(request.direction, str(request.direction)),
            max_frames=request.max_frames,
            formats=_formats(request.formats),
            object_ids=tuple(request.object_ids),
        )
        async for frame in self._video().propagate(request.session_id, _owner(context), query):
            yield _frame_to_pb(frame)

    async def AppendFrames(self, request: pb.AppendFramesRequest, context) -> pb.AppendFramesResponse:
        frames = tuple(_image(image) for image in request.frames.frames)
        appended = await self._video().append_frames(request.session_id, _owner(context), frames, request.release_old_frames)
        return pb.AppendFramesResponse(frame_count=appended.frame_count, session_bytes=appended.session_bytes)

    async def CloseVideo(self, request: pb.CloseVideoRequest, context) -> pb.CloseVideoResponse:
        return pb.CloseVideoResponse(frames_tracked=await self._video().close(request.session_id, _owner(context)))


def _owner(context) -> str:
    """Who a session belongs to: a digest of the caller's bearer token (with --auth-token), else
    nobody in particular (the unguessable session id is then the capability)."""
    token = bearer_token(context.invocation_metadata())
    return hashlib.sha256(token.encode()).hexdigest() if token else ""


def _formats(values) -> tuple[str, ...]:
    from labelgate.server.servicer import _FORMATS

    return tuple(_FORMATS.get(value, str(value)) for value in values)


def _image(image: pb.Image) -> ImageRef:
    source = image.WhichOneof("source")
    return ImageRef(data=image.data) if source == "data" else ImageRef(image_id=image.image_id if source else "")


def _frame_to_pb(frame: EncodedFrame) -> pb.TrackedFrame:
    from labelgate.server.servicer import mask_to_pb

    return pb.TrackedFrame(
        frame_index=frame.frame_index,
        timestamp=frame.timestamp,
        objects=[pb.TrackedObject(object_id=obj.object_id, mask=mask_to_pb(obj.mask)) for obj in frame.objects],
    )
