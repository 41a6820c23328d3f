"""Automatic image_id reuse: remember the id the server gave for some encoded bytes, and send only
that id the next time the same bytes are passed.

Transport-free on purpose (no grpc calls here), so a sync and an async client drive the same
logic: `ImageIdCache.prepare(image)` gives an `ImageUpload`; send `upload.message()`; if that
fails, `upload.should_resend(error)` says whether to send `upload.message()` once more (now with
the bytes); on success call `upload.remember(response.image_id)`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import grpc

from labelgate.client.errors import LabelgateClientError
from labelgate.client.images import ImageId, ImageLike, encode_image
from labelgate.v1 import labelgate_pb2 as pb

DEFAULT_CAPACITY = 256


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class ImageIdCache:
    """A bounded, thread-safe LRU map: digest of encoded bytes -> the server's image_id."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._ids: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, key: bytes) -> str | None:
        with self._lock:
            image_id = self._ids.get(key)
            if image_id is not None:
                self._ids.move_to_end(key)
            return image_id

    def put(self, key: bytes, image_id: str) -> None:
        if self.capacity == 0 or not image_id:
            return
        with self._lock:
            self._ids[key] = image_id
            self._ids.move_to_end(key)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)

    def forget(self, key: bytes) -> None:
        with self._lock:
            self._ids.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()

    def prepare(self, image: ImageLike | ImageId) -> "ImageUpload":
        if isinstance(image, ImageId):
            return ImageUpload(self, image_id=str(image))
        data = encode_image(image)
        key = digest(data)
        return ImageUpload(self, data=data, key=key, image_id=self.get(key))


class ImageUpload:
    """How one call's image goes over the wire: by id when one is known, else by bytes; at most
    one resend with the bytes when the server no longer knows a remembered id."""

    def __init__(self, cache: ImageIdCache, *, data: bytes | None = None, key: bytes | None = None,
                 image_id: str | None = None):
        self._cache, self._data, self._key, self._image_id = cache, data, key, image_id

    @property
    def sends_bytes(self) -> bool:
        return self._image_id is None

    def message(self) -> pb.Image:
        if self._image_id is not None:
            return pb.Image(image_id=self._image_id)
        return pb.Image(data=self._data)

    def should_resend(self, error: LabelgateClientError) -> bool:
        """True (and switch to sending the bytes) when a remembered id was refused as NOT_FOUND,
        e.g. after the server evicted or restarted. Ids the caller gave explicitly are never
        replaced: there are no bytes to send instead."""
        if error.code != grpc.StatusCode.NOT_FOUND or self._data is None or self._image_id is None:
            return False
        self._cache.forget(self._key)
        self._image_id = None
        return True

    def remember(self, image_id: str) -> None:
        if self._key is not None and image_id:
            self._cache.put(self._key, image_id)
