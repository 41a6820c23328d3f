"""A model's image-feature cache as two tiers: this process's byte-bounded LRU, then a shared store
(Redis) for the features `feature_codec` can store (SAM 2, EdgeTAM, SAM 3).

Looks like the `ByteLRUCache` it wraps (`get_or_compute`), plus `lookup` for a request
that names an image only by id. On a local miss the shared tier is asked before the encoder runs;
features the encoder computes are written there, so an `image_id` issued by one replica is usable
on every replica. A shared-tier hit is a cache hit for the client.

Single flight across replicas: the replica that misses everywhere takes a short Redis lock on the
key and encodes; the others poll for its result. The lock's PX is also the longest anyone waits:
a holder that died (or is slower than that) stops blocking others once it expires, and after
`lock_seconds` of waiting a replica encodes by itself. A request's own deadline, if sooner, ends
its wait with DeadlineExceeded. With Redis down there is no lock and every replica encodes on its
own, as without the shared tier.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Awaitable, Callable, Hashable

from labelgate.models.backend import ImageFeatures
from labelgate.server.cache import ByteLRUCache
from labelgate.core.errors import DeadlineExceeded
from labelgate.server.feature_codec import (
    FeatureFormatError,
    PositionEncodings,
    UnshareableFeatures,
    decode_features,
    encode_features,
    from_shared_tier,
)
from labelgate.server.openmp_workers import in_worker_thread
from labelgate.server.redis_tier import Lock, RedisFeatureStore, redact

FORMAT = "f1"  # bump with an incompatible feature_codec change: old entries are then simply misses
POLL_S = 0.05

log = logging.getLogger(__name__)


class TieredFeatureCache:
    def __init__(self, local: ByteLRUCache[ImageFeatures], shared: RedisFeatureStore | None = None, *,
                 key_prefix: str = "labelgate:", kind: str = "torch", device: str = "cpu", lock_seconds: float = 10.0,
                 position_encodings: PositionEncodings | None = None):
        self.local, self.shared = local, shared
        self.key_prefix, self.kind, self.device, self.lock_seconds = key_prefix, kind, device, lock_seconds
        self.position_encodings = position_encodings  # SAM 3's, for its features read back from Redis
        self._unshareable_logged = False

    def __len__(self) -> int:
        return len(self.local)

    async def lookup(self, key: Hashable) -> ImageFeatures | None:
        """Features held by either tier (a shared hit is copied into the local one), or None."""
        value = self.local.peek(key)
        if value is None and self.shared is not None:
            value = await self._fetch(self.redis_key(key))
            if value is not None:
                self.local.put(key, value)
        return value

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[ImageFeatures]],
                             deadline: float | None = None) -> tuple[ImageFeatures, bool]:
        """(features, cache_hit): local tier, else shared tier, else `compute()` (then published).

        `deadline` (event-loop time, None = none) bounds this caller's wait, for another replica's
        lock too: past it, DeadlineExceeded. The work goes on while other callers still wait for it."""
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                return await self._get_or_compute(key, compute)
        except TimeoutError:
            if not timeout.expired():
                raise
            raise DeadlineExceeded("the deadline passed while waiting for the image features; retry with a longer deadline") from None

    async def _get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[ImageFeatures]]) -> tuple[ImageFeatures, bool]:
        if self.shared is None:
            return await self.local.get_or_compute(key, compute)
        value, hit = await self.local.get_or_compute(key, lambda: self._shared_or_compute(key, compute))
        return value, hit or from_shared_tier(value)

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()

    def redis_key(self, key: Hashable) -> str:
        image_id, model, version = key
        return f"{self.key_prefix}features:{FORMAT}:{model}:{version}:{image_id}"

    # --- the shared tier ------------------------------------------------------------------------

    async def _shared_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[ImageFeatures]]) -> ImageFeatures:
        redis_key = self.redis_key(key)
        lock_key, token = redis_key + ":lock", uuid.uuid4().hex
        deadline = asyncio.get_running_loop().time() + self.lock_seconds
        waited = False
        while True:
            value = await self._fetch(redis_key)
            if value is not None:
                if waited:
                    self.shared.count("lock_waited")
                return value
            lock = await self.shared.try_lock(lock_key, token, self.lock_seconds)
            if lock is Lock.UNAVAILABLE:
                return await compute()
            if lock is Lock.ACQUIRED:
                self.shared.count("lock_acquired")
                try:
                    return await self._compute_and_publish(redis_key, compute)
                finally:
                    await self.shared.unlock(lock_key, token)
            if asyncio.get_running_loop().time() >= deadline:
                self.shared.count("lock_timeout")
                return await self._compute_and_publish(redis_key, compute)
            waited = True
            await asyncio.sleep(POLL_S)

    async def _compute_and_publish(self, redis_key: str, compute: Callable[[], Awaitable[ImageFeatures]]) -> ImageFeatures:
        value = await compute()
        try:
            data = await in_worker_thread(encode_features, value)
        except UnshareableFeatures as error:  # a model whose features the codec does not know: local only
            if not self._unshareable_logged:
                self._unshareable_logged = True
                log.warning("shared feature cache: %s; its features stay in this process", error)
            return value
        await self.shared.put(redis_key, data)
        return value

    async def _fetch(self, redis_key: str):
        data = await self.shared.get(redis_key)
        if data is None:
            return None
        try:
            return await in_worker_thread(decode_features, data, self.kind, self.device, self.position_encodings)
        except (FeatureFormatError, ValueError, KeyError) as error:  # another writer's format: a miss
            self.shared.count("error")
            log.warning("shared feature cache: unreadable entry %s (%s); recomputing", redis_key, error)
            return None


def build_feature_cache(settings, metrics, backend, max_bytes: int) -> TieredFeatureCache:
    """One model's feature cache: local only (`max_bytes`, reported as cache "features/<model>"), or
    local + Redis with --redis-url (features the codec does not know stay local, with a warning).

    Features read from Redis become torch tensors on the backend's device, as every backend's
    decoder takes them; a SAM 3 backend gives their position encodings (`position_encodings`)."""
    local = ByteLRUCache(f"features/{backend.info.name}", max_bytes, lambda features: features.nbytes, metrics.cache)
    shared = None
    if settings.redis_url:
        shared = RedisFeatureStore(settings.redis_url, settings.redis_ttl_seconds, metrics.shared_cache,
                                   timeout_s=settings.redis_timeout_ms / 1000.0)
        log.info("shared feature cache: Redis at %s (TTL %d s, key prefix %r)", redact(settings.redis_url),
                 settings.redis_ttl_seconds, settings.redis_key_prefix)
    return TieredFeatureCache(local, shared, key_prefix=settings.redis_key_prefix,
                              kind="torch", device=backend.info.device,
                              lock_seconds=settings.redis_lock_seconds,
                              position_encodings=getattr(backend, "position_encodings", None))
