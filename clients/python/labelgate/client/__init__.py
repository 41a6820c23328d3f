"""Python client for labelgate: SAM 2 masks and Grounding DINO boxes over gRPC.

    from labelgate.client import Client

    with Client("127.0.0.1:50051") as client:
        result = client.segment("photo.jpg", points=[(120, 80)])
        mask = result.objects[0].best.to_numpy()  # H x W bool

`AsyncClient` has the same methods for asyncio. Both take TLS, a bearer token, a deadline per
call and a retry policy for UNAVAILABLE; `Client.from_env()` reads them from LABELGATE_*.

Light on purpose: grpcio, protobuf, numpy, pillow and pycocotools only (no torch).
"""

from labelgate.client.affinity import AffinityClient, endpoints_from_dns, rank_endpoints
from labelgate.client.async_affinity import AsyncAffinityClient
from labelgate.client.async_client import AsyncClient
from labelgate.client.client import Client
from labelgate.client.errors import LabelgateClientError
from labelgate.client.images import ImageId, encode_image
from labelgate.client.retry import NO_RETRIES, RetryPolicy
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
    "AffinityClient",
    "AsyncAffinityClient",
    "AsyncClient",
    "Client",
    "DetectResult",
    "Detection",
    "EmbedResult",
    "ImageId",
    "LabelgateClientError",
    "Mask",
    "ModelInfo",
    "NO_RETRIES",
    "RetryPolicy",
    "SegmentResult",
    "SegmentedObject",
    "encode_image",
    "endpoints_from_dns",
    "rank_endpoints",
]
