"""An LRU of SAM 3 text features by phrase: annotation tools ask about the same few concepts over and
over, and the CLIP text encoder's output depends on the phrase alone."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

DEFAULT_MAX_ENTRIES = 256

Value = TypeVar("Value")


class PhraseCache(Generic[Value]):
    """`get(phrase, compute)` returns the cached value or stores `compute()`'s. Two concurrent misses
    on one phrase may both compute it (a text encoder run is cheap next to a query); the first
    stored wins, so every caller sees one value per phrase."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES):
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Value] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, phrase: str, compute: Callable[[], Value]) -> Value:
        with self._lock:
            if phrase in self._entries:
                self.hits += 1
                self._entries.move_to_end(phrase)
                return self._entries[phrase]
            self.misses += 1
        value = compute()
        with self._lock:
            value = self._entries.setdefault(phrase, value)
            self._entries.move_to_end(phrase)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value
