"""Which labelgate mask a new click refines.

With each new click of a smart keypoint tool, Label Studio sends every click of that label on the
image so far (the editor's "connected dynamic regions": same type, same label, same image), oldest
first, each with its region id. labelgate can start from the mask of the previous interaction
(SegmentRequest.refine_mask_id: SAM 2 gets that mask's low-resolution logits back as its mask
input), which keeps the object from jumping as clicks are added.

So the backend remembers, for each recent prompt, the mask id labelgate gave for it. A session is
one task image, model and box; a prompt is its clicks in order, each as (region id, x, y, negative).
A request whose clicks are a remembered prompt's plus one refines that prompt's mask. A click that
was moved or deleted matches nothing remembered, and the request starts afresh from all its clicks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence


class RefineMemory:
    """Mask ids by (session, clicks), least recently used out first past `capacity`."""

    def __init__(self, capacity: int = 1024):
        self.capacity = capacity
        self._ids: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def previous(self, session: Hashable, clicks: Sequence[Hashable]) -> str:
        """The mask id of the same session's prompt without the newest click; "" if none."""
        if not clicks:
            return ""
        key = (session, tuple(clicks[:-1]))
        with self._lock:
            mask_id = self._ids.get(key, "")
            if mask_id:
                self._ids.move_to_end(key)
            return mask_id

    def remember(self, session: Hashable, clicks: Sequence[Hashable], mask_id: str) -> None:
        if not mask_id or self.capacity <= 0:
            return
        key = (session, tuple(clicks))
        with self._lock:
            self._ids[key] = mask_id
            self._ids.move_to_end(key)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)

    def forget_previous(self, session: Hashable, clicks: Sequence[Hashable]) -> None:
        """Drops what `previous` would answer (labelgate no longer has that mask)."""
        with self._lock:
            self._ids.pop((session, tuple(clicks[:-1])), None)

    def __len__(self) -> int:
        return len(self._ids)
