from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MaskFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COCO_RLE: _ClassVar[MaskFormat]
    POLYGONS: _ClassVar[MaskFormat]
    PNG: _ClassVar[MaskFormat]

class PropagateDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPAGATE_FORWARD: _ClassVar[PropagateDirection]
    PROPAGATE_BACKWARD: _ClassVar[PropagateDirection]
    PROPAGATE_BOTH: _ClassVar[PropagateDirection]
COCO_RLE: MaskFormat
POLYGONS: MaskFormat
PNG: MaskFormat
PROPAGATE_FORWARD: PropagateDirection
PROPAGATE_BACKWARD: PropagateDirection
PROPAGATE_BOTH: PropagateDirection

class Image(_message.Message):
    __slots__ = ("data", "image_id")
    DATA_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    image_id: str
    def __init__(self, data: _Optional[bytes] = ..., image_id: _Optional[str] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y", "negative")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    negative: bool
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., negative: _Optional[bool] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("image", "model")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    image: Image
    model: str
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("image_id", "width", "height", "cache_hit")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    width: int
    height: int
    cache_hit: bool
    def __init__(self, image_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., cache_hit: _Optional[bool] = ...) -> None: ...

class SegmentRequest(_message.Message):
    __slots__ = ("image", "points", "boxes", "text", "multimask_output", "formats", "box_threshold", "text_threshold", "model", "detector_model", "refine_mask_id", "exemplars", "nms_iou_threshold", "max_instances")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MULTIMASK_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    BOX_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEXT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    REFINE_MASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXEMPLARS_FIELD_NUMBER: _ClassVar[int]
    NMS_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    image: Image
    points: _containers.RepeatedCompositeFieldContainer[Point]
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    text: str
    multimask_output: bool
    formats: _containers.RepeatedScalarFieldContainer[MaskFormat]
    box_threshold: float
    text_threshold: float
    model: str
    detector_model: str
    refine_mask_id: str
    exemplars: _containers.RepeatedCompositeFieldContainer[Exemplar]
    nms_iou_threshold: float
    max_instances: int
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., text: _Optional[str] = ..., multimask_output: _Optional[bool] = ..., formats: _Optional[_Iterable[_Union[MaskFormat, str]]] = ..., box_threshold: _Optional[float] = ..., text_threshold: _Optional[float] = ..., model: _Optional[str] = ..., detector_model: _Optional[str] = ..., refine_mask_id: _Optional[str] = ..., exemplars: _Optional[_Iterable[_Union[Exemplar, _Mapping]]] = ..., nms_iou_threshold: _Optional[float] = ..., max_instances: _Optional[int] = ...) -> None: ...

class Exemplar(_message.Message):
    __slots__ = ("box", "negative")
    BOX_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    box: Box
    negative: bool
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., negative: _Optional[bool] = ...) -> None: ...

class CocoRle(_message.Message):
    __slots__ = ("size", "counts")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    size: _containers.RepeatedScalarFieldContainer[int]
    counts: str
    def __init__(self, size: _Optional[_Iterable[int]] = ..., counts: _Optional[str] = ...) -> None: ...

class Polygon(_message.Message):
    __slots__ = ("points", "hole")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    HOLE_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedScalarFieldContainer[float]
    hole: bool
    def __init__(self, points: _Optional[_Iterable[float]] = ..., hole: _Optional[bool] = ...) -> None: ...

class Mask(_message.Message):
    __slots__ = ("score", "bbox", "rle", "polygons", "png", "area", "mask_id")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    RLE_FIELD_NUMBER: _ClassVar[int]
    POLYGONS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    MASK_ID_FIELD_NUMBER: _ClassVar[int]
    score: float
    bbox: Box
    rle: CocoRle
    polygons: _containers.RepeatedCompositeFieldContainer[Polygon]
    png: bytes
    area: int
    mask_id: str
    def __init__(self, score: _Optional[float] = ..., bbox: _Optional[_Union[Box, _Mapping]] = ..., rle: _Optional[_Union[CocoRle, _Mapping]] = ..., polygons: _Optional[_Iterable[_Union[Polygon, _Mapping]]] = ..., png: _Optional[bytes] = ..., area: _Optional[int] = ..., mask_id: _Optional[str] = ...) -> None: ...

class ObjectMasks(_message.Message):
    __slots__ = ("masks", "label", "detection_score", "prompt_box")
    MASKS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DETECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_BOX_FIELD_NUMBER: _ClassVar[int]
    masks: _containers.RepeatedCompositeFieldContainer[Mask]
    label: str
    detection_score: float
    prompt_box: Box
    def __init__(self, masks: _Optional[_Iterable[_Union[Mask, _Mapping]]] = ..., label: _Optional[str] = ..., detection_score: _Optional[float] = ..., prompt_box: _Optional[_Union[Box, _Mapping]] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("image_id", "width", "height", "objects", "cache_hit")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    width: int
    height: int
    objects: _containers.RepeatedCompositeFieldContainer[ObjectMasks]
    cache_hit: bool
    def __init__(self, image_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[ObjectMasks, _Mapping]]] = ..., cache_hit: _Optional[bool] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("image", "text", "box_threshold", "text_threshold", "model")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BOX_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEXT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    image: Image
    text: str
    box_threshold: float
    text_threshold: float
    model: str
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., text: _Optional[str] = ..., box_threshold: _Optional[float] = ..., text_threshold: _Optional[float] = ..., model: _Optional[str] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("box", "score", "label")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    box: Box
    score: float
    label: str
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., score: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("image_id", "width", "height", "detections")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    width: int
    height: int
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    def __init__(self, image_id: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "kind", "version", "device", "is_default", "capabilities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    version: str
    device: str
    is_default: bool
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., version: _Optional[str] = ..., device: _Optional[str] = ..., is_default: _Optional[bool] = ..., capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class VideoFrames(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, frames: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class OpenVideoRequest(_message.Message):
    __slots__ = ("video", "frames", "model", "stream")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    video: bytes
    frames: VideoFrames
    model: str
    stream: bool
    def __init__(self, video: _Optional[bytes] = ..., frames: _Optional[_Union[VideoFrames, _Mapping]] = ..., model: _Optional[str] = ..., stream: _Optional[bool] = ...) -> None: ...

class OpenVideoResponse(_message.Message):
    __slots__ = ("session_id", "frame_count", "width", "height", "timestamps", "model")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frame_count: int
    width: int
    height: int
    timestamps: _containers.RepeatedScalarFieldContainer[float]
    model: str
    def __init__(self, session_id: _Optional[str] = ..., frame_count: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., timestamps: _Optional[_Iterable[float]] = ..., model: _Optional[str] = ...) -> None: ...

class ObjectPrompt(_message.Message):
    __slots__ = ("object_id", "points", "box", "mask_png")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    MASK_PNG_FIELD_NUMBER: _ClassVar[int]
    object_id: int
    points: _containers.RepeatedCompositeFieldContainer[Point]
    box: Box
    mask_png: bytes
    def __init__(self, object_id: _Optional[int] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., mask_png: _Optional[bytes] = ...) -> None: ...

class AddPromptsRequest(_message.Message):
    __slots__ = ("session_id", "frame_index", "objects", "formats", "text", "text_model", "detector_model", "box_threshold", "text_threshold", "max_objects")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXT_MODEL_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_MODEL_FIELD_NUMBER: _ClassVar[int]
    BOX_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TEXT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frame_index: int
    objects: _containers.RepeatedCompositeFieldContainer[ObjectPrompt]
    formats: _containers.RepeatedScalarFieldContainer[MaskFormat]
    text: str
    text_model: str
    detector_model: str
    box_threshold: float
    text_threshold: float
    max_objects: int
    def __init__(self, session_id: _Optional[str] = ..., frame_index: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[ObjectPrompt, _Mapping]]] = ..., formats: _Optional[_Iterable[_Union[MaskFormat, str]]] = ..., text: _Optional[str] = ..., text_model: _Optional[str] = ..., detector_model: _Optional[str] = ..., box_threshold: _Optional[float] = ..., text_threshold: _Optional[float] = ..., max_objects: _Optional[int] = ...) -> None: ...

class FoundObject(_message.Message):
    __slots__ = ("object_id", "label", "score")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    object_id: int
    label: str
    score: float
    def __init__(self, object_id: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class TrackedObject(_message.Message):
    __slots__ = ("object_id", "mask")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    object_id: int
    mask: Mask
    def __init__(self, object_id: _Optional[int] = ..., mask: _Optional[_Union[Mask, _Mapping]] = ...) -> None: ...

class TrackedFrame(_message.Message):
    __slots__ = ("frame_index", "timestamp", "objects")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    timestamp: float
    objects: _containers.RepeatedCompositeFieldContainer[TrackedObject]
    def __init__(self, frame_index: _Optional[int] = ..., timestamp: _Optional[float] = ..., objects: _Optional[_Iterable[_Union[TrackedObject, _Mapping]]] = ...) -> None: ...

class AddPromptsResponse(_message.Message):
    __slots__ = ("frame", "found")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    frame: TrackedFrame
    found: _containers.RepeatedCompositeFieldContainer[FoundObject]
    def __init__(self, frame: _Optional[_Union[TrackedFrame, _Mapping]] = ..., found: _Optional[_Iterable[_Union[FoundObject, _Mapping]]] = ...) -> None: ...

class PropagateRequest(_message.Message):
    __slots__ = ("session_id", "start_frame", "direction", "max_frames", "formats", "object_ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    start_frame: int
    direction: PropagateDirection
    max_frames: int
    formats: _containers.RepeatedScalarFieldContainer[MaskFormat]
    object_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, session_id: _Optional[str] = ..., start_frame: _Optional[int] = ..., direction: _Optional[_Union[PropagateDirection, str]] = ..., max_frames: _Optional[int] = ..., formats: _Optional[_Iterable[_Union[MaskFormat, str]]] = ..., object_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class AppendFramesRequest(_message.Message):
    __slots__ = ("session_id", "frames", "release_old_frames")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    RELEASE_OLD_FRAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frames: VideoFrames
    release_old_frames: bool
    def __init__(self, session_id: _Optional[str] = ..., frames: _Optional[_Union[VideoFrames, _Mapping]] = ..., release_old_frames: _Optional[bool] = ...) -> None: ...

class AppendFramesResponse(_message.Message):
    __slots__ = ("frame_count", "session_bytes")
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    SESSION_BYTES_FIELD_NUMBER: _ClassVar[int]
    frame_count: int
    session_bytes: int
    def __init__(self, frame_count: _Optional[int] = ..., session_bytes: _Optional[int] = ...) -> None: ...

class CloseVideoRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseVideoResponse(_message.Message):
    __slots__ = ("frames_tracked",)
    FRAMES_TRACKED_FIELD_NUMBER: _ClassVar[int]
    frames_tracked: int
    def __init__(self, frames_tracked: _Optional[int] = ...) -> None: ...
