"""An asyncio LRU cache bounded in bytes, where concurrent misses for one key share one computation.

Used for SAM 2 image features (the encoder runs once per image and model) and for the encoded
bytes of images received, so that later calls can send only the image id.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

from labelgate.server.metrics import CacheMetrics

V = TypeVar("V")
log = logging.getLogger(__name__)


@dataclass
class _Flight:
    task: asyncio.Future
    waiters: int = 0
    abandoned: bool = False


@dataclass
class _Entry(Generic[V]):
    value: V
    nbytes: int


@dataclass
class ByteLRUCache(Generic[V]):
    name: str
    max_bytes: int
    size_of: Callable[[V], int]
    metrics: CacheMetrics | None = None
    _entries: "OrderedDict[Hashable, _Entry[V]]" = field(default_factory=OrderedDict)
    _flights: dict = field(default_factory=dict)
    bytes_used: int = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> V | None:
        """The cached value (now most recently used), or None. Counts a hit or a miss."""
        entry = self._entries.get(key)
        if entry is None:
            self._count("misses")
            return None
        self._entries.move_to_end(key)
        self._count("hits")
        return entry.value

    def peek(self, key: Hashable) -> V | None:
        """The cached value without touching LRU order or counters."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def put(self, key: Hashable, value: V) -> None:
        nbytes = self.size_of(value)
        if nbytes > self.max_bytes:
            log.warning("%s cache: an entry of %d bytes exceeds the whole budget of %d; not cached", self.name, nbytes, self.max_bytes)
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes_used -= old.nbytes
        self._entries[key] = _Entry(value, nbytes)
        self.bytes_used += nbytes
        while self.bytes_used > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes_used -= evicted.nbytes
            self._count("evictions")
        self._report_size()

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """(value, cache_hit). On a miss, `compute()` runs once however many callers wait for it.

        The computation belongs to no single caller: a caller that is cancelled leaves it running
        for the others, and it is cancelled only when every caller has gone.
        """
        value = self.get(key)
        if value is not None:
            return value, True
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(compute()))
            self._flights[key] = flight
            flight.task.add_done_callback(lambda task: self._land(key, flight, task))
        else:
            self._count("coalesced")
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task), False
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.abandoned = True
                self._flights.pop(key, None)
                flight.task.cancel()

    def _land(self, key: Hashable, flight: _Flight, task: asyncio.Future) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.abandoned and not task.cancelled() and task.exception() is None:
            self.put(key, task.result())
        elif not task.cancelled():
            task.exception()  # retrieved: the waiters re-raise it

    def _count(self, event: str) -> None:
        if self.metrics is not None:
            self.metrics.count(self.name, event)

    def _report_size(self) -> None:
        if self.metrics is not None:
            self.metrics.size(self.name, self.bytes_used, len(self._entries))
