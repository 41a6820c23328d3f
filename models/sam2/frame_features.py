"""Image-encoder outputs of frames, shared by all sessions of one SAM 2 model.

A CVAT tracker opens one session per shape, and every session steps through the same frames: each
ran SAM 2's image encoder (most of a step's cost) on every frame again and kept its own copy of the
result. Sessions now hand a frame's encoder output to the next session that tracks an equal frame,
known by its content key (a digest of the frame's bytes, see FrameSource.content_key). The output
is what upstream's `_get_image_feature` caches for one frame, reused unchanged, so the masks are
the same bit for bit. Entries are held weakly: one lives as long as a session still has it as its
cached frame, so sharing holds no memory of its own (and none outside the sessions' budgets).
"""

from __future__ import annotations

import threading
import weakref


class FrameFeatures:
    """One frame's encoder output as upstream caches it, `(image, backbone_out)`; sessions hold it."""

    __slots__ = ("value", "__weakref__")

    def __init__(self, value: tuple):
        self.value = value


class SharedFrameFeatures:
    def __init__(self):
        self._entries: weakref.WeakValueDictionary[bytes, FrameFeatures] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> FrameFeatures | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: bytes, entry: FrameFeatures) -> None:
        with self._lock:
            self._entries[key] = entry

    def __len__(self) -> int:
        return len(self._entries)
