"""Image affinity across labelgate replicas: every call about one image goes to the same replica.

    from labelgate.client import AffinityClient, ImageId

    with AffinityClient(["10.0.0.5:50051", "10.0.0.6:50051"]) as client:
        embedded = client.embed("photo.jpg")                        # encoder runs on one replica
        client.segment(ImageId(embedded.image_id), points=[(5, 5)])  # the same replica: a local hit

That replica keeps the image's SAM 2 features in its in-process cache, so the shared Redis tier is
the fallback (after a replica restarts or the endpoint list changes), not the hot path.

Routing is rendezvous (highest-random-weight) hashing: an image ranks the endpoints by
blake2b(endpoint, key) and the first serves it, so adding or removing a replica only moves the
images that ranked it first. The key is a digest of the image's encoded bytes; an image_id a
server returns is mapped back to that key, so `embed(bytes)` and a later `segment(ImageId(...))`
meet on one replica. Ids this client has not seen are hashed as they are. A call answered
UNAVAILABLE (replica gone or draining) moves to the image's next endpoint.

A video tracking session (`track`, `open_video`) lives on one replica, chosen the same way by a
digest of the video's content, and every call of the session goes there. A session the replica
loses (restart, scale-down, idle TTL) is reopened there if it answers, else on the video's next
endpoint, and its prompts replayed (`video_session`).

In Kubernetes, list the pods behind the headless Service (deploy/k8s/labelgate-service.yaml):
`AffinityClient(endpoints_from_dns("labelgate-headless.labelgate.svc.cluster.local:50051"))`.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import grpc

from labelgate.client.client import Client
from labelgate.client.errors import LabelgateClientError
from labelgate.client.image_ids import digest
from labelgate.client.images import ImageId, ImageLike, encode_image
from labelgate.client.tracking import open_video_request
from labelgate.client.video_session import VideoSession, track_on, video_key

DEFAULT_REMEMBERED_IDS = 4096


def rank_endpoints(key: bytes | str, endpoints: Iterable[str]) -> list[str]:
    """`endpoints` ordered by preference for `key`: the first serves it, the next if it is down."""
    key_bytes = key.encode() if isinstance(key, str) else key

    def weight(endpoint: str) -> bytes:
        return hashlib.blake2b(endpoint.encode() + b"\0" + key_bytes, digest_size=8).digest()

    return sorted(endpoints, key=weight, reverse=True)


def endpoints_from_dns(target: str) -> list[str]:
    """"HOST:PORT" -> one "ADDRESS:PORT" per address the name resolves to (e.g. the pods behind a
    Kubernetes headless Service), sorted. Resolve again when replicas come and go."""
    host, _, port = target.rpartition(":")
    infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    addresses = {info[4][0] for info in infos}
    return sorted(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses)


def common_models(listings: dict[str, list]) -> list:
    """The models named by every listing (endpoint -> ModelInfo list), in the first listing's order."""
    versions: dict[str, dict[str, list[str]]] = {}
    for endpoint, models in listings.items():
        for model in models:
            versions.setdefault(model.name, {}).setdefault(model.version, []).append(endpoint)
    split = {name: by_version for name, by_version in versions.items() if len(by_version) > 1}
    if split:
        name, by_version = sorted(split.items())[0]
        where = "; ".join(f"{version} on {', '.join(endpoints)}" for version, endpoints in by_version.items())
        raise ValueError(f"the replicas serve model {name!r} at different versions ({where}): "
                         "wait for the rollout to finish, or pass the replicas of one version")
    first = next(iter(listings.values()))
    return [model for model in first if all(any(m.name == model.name for m in other) for other in listings.values())]


class FleetRouting:
    """What the sync and asyncio fleet clients share: the endpoints, the routing keys of the image
    ids they were given, and one client per endpoint (made by `_new_client`)."""

    def __init__(self, endpoints: Sequence[str], **client_options):
        self.endpoints = list(dict.fromkeys(endpoints))
        if not self.endpoints:
            raise ValueError(f"{type(self).__name__} needs at least one endpoint")
        self._options = client_options
        self._clients: dict = {}
        self._keys: OrderedDict[str, bytes] = OrderedDict()  # image_id -> routing key
        self._lock = threading.Lock()

    def endpoint_for(self, image: ImageLike | ImageId) -> str:
        """The replica that serves `image` while every replica is up."""
        return rank_endpoints(self._route(image)[1], self.endpoints)[0]

    def endpoint_for_video(self, video) -> str:
        """The replica that holds `video`'s sessions while every replica is up."""
        return rank_endpoints(video_key(open_video_request(video)), self.endpoints)[0]

    def client(self, endpoint: str):
        with self._lock:
            if endpoint not in self._clients:
                self._clients[endpoint] = self._new_client(endpoint, **self._options)
            return self._clients[endpoint]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoints!r})"

    def _new_client(self, endpoint: str, **options):
        raise NotImplementedError

    def _take_clients(self) -> list:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        return clients

    def _route(self, image: ImageLike | ImageId) -> tuple[bytes | ImageId, bytes]:
        """(what to send: encoded bytes or the id, the routing key)."""
        if isinstance(image, ImageId):
            with self._lock:
                key = self._keys.get(str(image))
            return image, key if key is not None else str(image).encode()
        data = encode_image(image)
        return data, digest(data)

    def _video_clients(self, request) -> list:
        return [self.client(endpoint) for endpoint in rank_endpoints(video_key(request), self.endpoints)]

    def _remember(self, image_id: str, key: bytes) -> None:
        if not image_id:
            return
        with self._lock:
            self._keys[image_id] = key
            self._keys.move_to_end(image_id)
            while len(self._keys) > DEFAULT_REMEMBERED_IDS:
                self._keys.popitem(last=False)


def moves_on(error: LabelgateClientError, index: int, count: int) -> bool:
    """Whether a call that failed on the `index`-th of `count` ranked endpoints goes to the next."""
    return error.code == grpc.StatusCode.UNAVAILABLE and index + 1 < count


def skips_listing(error: LabelgateClientError, endpoint: str, endpoints: Sequence[str], listed: int) -> bool:
    """Whether `list_models` goes on without a replica that failed: one that is down, unless it was
    the last and none answered."""
    return error.code == grpc.StatusCode.UNAVAILABLE and not (endpoint == endpoints[-1] and not listed)


class AffinityClient(FleetRouting):
    """`Client`'s image methods over several replicas, each image pinned to one of them.

    `client_options` go to every per-endpoint `Client` (timeout, TLS, token, retry, ...).
    Thread-safe, like `Client`. `AsyncAffinityClient` is the same for asyncio.
    """

    def embed(self, image: ImageLike | ImageId, *args, **kwargs):
        return self._call("embed", image, args, kwargs)

    def segment(self, image: ImageLike | ImageId, *args, **kwargs):
        return self._call("segment", image, args, kwargs)

    def detect(self, image: ImageLike | ImageId, *args, **kwargs):
        return self._call("detect", image, args, kwargs)

    def track(self, video, prompts=(), *, model: str = "", **options):
        """`Client.track` on the video's replica (the next one if it is down or loses the session)."""
        request = open_video_request(video, model)
        return track_on(self._video_clients(request), request, prompts, **options)

    def open_video(self, video, *, model: str = "", stream: bool = False, timeout: float | None = None) -> VideoSession:
        """`Client.open_video` on the video's replica. A `stream` session is routed by the frames it is
        opened with; the frames appended later go to the replica holding it."""
        request = open_video_request(video, model, stream)
        return VideoSession(self._video_clients(request), request, timeout=timeout).open()

    def list_models(self, **kwargs):
        """The models every reachable replica serves, as the first one lists them. Replicas serving
        one name at different weights versions (a rollout half done) are refused: the answers
        would depend on which replica an image lands on."""
        listings = {}
        for endpoint in self.endpoints:
            try:
                listings[endpoint] = self.client(endpoint).list_models(**kwargs)
            except LabelgateClientError as error:
                if not skips_listing(error, endpoint, self.endpoints, len(listings)):
                    raise
        return common_models(listings)

    def close(self) -> None:
        for client in self._take_clients():
            client.close()

    def __enter__(self) -> "AffinityClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _new_client(self, endpoint: str, **options) -> Client:
        return Client(endpoint, **options)

    def _call(self, method: str, image: ImageLike | ImageId, args: tuple, kwargs: dict):
        payload, key = self._route(image)
        ranked = rank_endpoints(key, self.endpoints)
        for index, endpoint in enumerate(ranked):
            try:
                result = getattr(self.client(endpoint), method)(payload, *args, **kwargs)
            except LabelgateClientError as error:
                if moves_on(error, index, len(ranked)):
                    continue
                raise
            self._remember(result.image_id, key)
            return result
