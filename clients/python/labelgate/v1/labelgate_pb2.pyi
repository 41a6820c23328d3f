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
COCO_RLE: MaskFormat
POLYGONS: MaskFormat
PNG: MaskFormat

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
