"""The gRPC servicer: protobuf <-> service objects. Status codes, metrics and fault logging are
`labelgate.server.interceptor`'s."""

from __future__ import annotations

import asyncio

from labelgate.core.errors import NotReady
from labelgate.server.masks import COCO_RLE, PNG, POLYGONS, EncodedMask
from labelgate.server.queries import (
    BoxPrompt,
    DetectQuery,
    ExemplarPrompt,
    ImageRef,
    PointPrompt,
    SegmentQuery,
)
from labelgate.server.video_servicer import VideoRpcs
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc

_FORMATS = {pb.COCO_RLE: COCO_RLE, pb.POLYGONS: POLYGONS, pb.PNG: PNG}  # an unknown value passes as its number, for validation to refuse


class LabelgateServicer(VideoRpcs, labelgate_pb2_grpc.LabelgateServicer):
    """Errors raised here become status codes in `RpcInterceptor`, which also counts and logs every call."""

    def __init__(self):
        self.service = None  # set once the models are loaded

    def _ready_service(self):
        if self.service is None:
            raise NotReady("the models are still loading; retry shortly (watch grpc.health.v1 for SERVING)")
        return self.service

    async def Embed(self, request: pb.EmbedRequest, context) -> pb.EmbedResponse:
        result = await self._ready_service().embed(_image(request.image), request.model, _deadline(context))
        return pb.EmbedResponse(image_id=result.image_id, width=result.width, height=result.height, cache_hit=result.cache_hit)

    async def Segment(self, request: pb.SegmentRequest, context) -> pb.SegmentResponse:
        query = SegmentQuery(
            image=_image(request.image),
            points=tuple(PointPrompt(p.x, p.y, p.negative) for p in request.points),
            boxes=tuple(_box_from_pb(b) for b in request.boxes),
            text=request.text,
            multimask_output=request.multimask_output,
            formats=tuple(_FORMATS.get(value, str(value)) for value in request.formats),
            box_threshold=request.box_threshold,
            text_threshold=request.text_threshold,
            model=request.model,
            detector_model=request.detector_model,
            refine_mask_id=request.refine_mask_id,
            exemplars=tuple(ExemplarPrompt(_box_from_pb(e.box), e.negative) for e in request.exemplars),
            nms_iou_threshold=request.nms_iou_threshold,
            max_instances=request.max_instances,
        )
        result = await self._ready_service().segment(query, _deadline(context))
        return pb.SegmentResponse(
            image_id=result.image_id,
            width=result.width,
            height=result.height,
            cache_hit=result.cache_hit,
            objects=[
                pb.ObjectMasks(
                    masks=[mask_to_pb(mask, mask_id) for mask, mask_id in zip(obj.masks, obj.mask_ids or ("",) * len(obj.masks))],
                    label=obj.label,
                    detection_score=obj.detection_score,
                    prompt_box=_box_to_pb(obj.prompt_box.as_tuple()) if obj.prompt_box else None,
                )
                for obj in result.objects
            ],
        )

    async def Detect(self, request: pb.DetectRequest, context) -> pb.DetectResponse:
        query = DetectQuery(
            image=_image(request.image),
            text=request.text,
            box_threshold=request.box_threshold,
            text_threshold=request.text_threshold,
            model=request.model,
        )
        result = await self._ready_service().detect(query, _deadline(context))
        return pb.DetectResponse(
            image_id=result.image_id,
            width=result.width,
            height=result.height,
            detections=[pb.Detection(box=_box_to_pb(d.box), score=d.score, label=d.label) for d in result.detections],
        )

    async def ListModels(self, request: pb.ListModelsRequest, context) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[
                pb.ModelInfo(name=info.name, kind=info.kind, version=info.version, device=info.device, is_default=default,
                             capabilities=sorted(capabilities))
                for info, default, capabilities in self._ready_service().list_models()
            ]
        )


def _deadline(context) -> float | None:
    remaining = context.time_remaining()
    if remaining is None:
        return None
    return asyncio.get_running_loop().time() + remaining


def _image(image: pb.Image) -> ImageRef:
    source = image.WhichOneof("source")
    if source == "data":
        return ImageRef(data=image.data)
    if source == "image_id":
        return ImageRef(image_id=image.image_id)
    return ImageRef()


def _box_from_pb(box: pb.Box) -> BoxPrompt:
    return BoxPrompt(box.x_min, box.y_min, box.x_max, box.y_max)


def _box_to_pb(box) -> pb.Box:
    x_min, y_min, x_max, y_max = box
    return pb.Box(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max)


def mask_to_pb(mask: EncodedMask, mask_id: str = "") -> pb.Mask:
    message = pb.Mask(score=mask.score, area=mask.area, mask_id=mask_id)
    if mask.bbox is not None:
        message.bbox.CopyFrom(_box_to_pb(mask.bbox))
    if mask.rle is not None:
        size, counts = mask.rle
        message.rle.CopyFrom(pb.CocoRle(size=size, counts=counts))
    if mask.polygons is not None:
        message.polygons.extend(pb.Polygon(points=points.tolist(), hole=hole) for points, hole in mask.polygons)
    if mask.png is not None:
        message.png = mask.png
    return message
