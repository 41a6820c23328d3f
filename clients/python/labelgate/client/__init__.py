"""Python client for labelgate: SAM 2 masks and Grounding DINO boxes over gRPC.

    from labelgate.client import Client

    with Client("127.0.0.1:50051") as client:
        result = client.segment("photo.jpg", points=[(120, 80)])
        mask = result.objects[0].best.to_numpy()  # H x W bool

Light on purpose: grpcio, protobuf, numpy, pillow and pycocotools only (no torch).
"""

from labelgate.client.client import Client
from labelgate.client.errors import LabelgateClientError
from labelgate.client.images import ImageId, encode_image
from labelgate.client.results import (
    DetectResult,
    Detection,
    EmbedResult,
    Mask,
    ModelInfo,
    SegmentedObject,
    SegmentResult,
)

__all__ = [
    "Client",
    "DetectResult",
    "Detection",
    "EmbedResult",
    "ImageId",
    "LabelgateClientError",
    "Mask",
    "ModelInfo",
    "SegmentResult",
    "SegmentedObject",
    "encode_image",
]
