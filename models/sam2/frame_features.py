"""Image-encoder outputs of the frames tracked last, shared by all sessions of one SAM 2 model.

A CVAT tracker opens one session per shape, and every session steps through the same frames: each
ran SAM 2's image encoder (most of a step's cost) on every frame again and kept its own copy of the
result. Sessions now hand a frame's encoder output to the next session that tracks an equal frame,
known by its content key (a digest of the frame's bytes, see FrameSource.content_key). The output
is what upstream's `_get_image_feature` caches for one frame, reused unchanged, so the masks are
the same bit for bit; only the last `capacity` frames are held.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

DEFAULT_CAPACITY = 2


class SharedFrameFeatures:
    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: bytes) -> tuple | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return entry

    def put(self, key: bytes, entry: tuple) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
