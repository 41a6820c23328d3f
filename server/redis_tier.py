"""Redis as the shared feature tier: bytes by key with a TTL, and a short lock per key.

A value is stored as a hash of chunks just under 4 MiB. Redis's allocator (jemalloc) rounds one
string of 8 MiB + a header (fp16 features at 1024 px) up to a 10 MiB size class; 4 MiB chunks
fill theirs, so an image costs Redis ~8 MiB instead of 10.

Nothing here ever raises to a request: Redis down, slow or answering nonsense reads as "not
there" (and a lock as UNAVAILABLE), so callers fall back to the local cache and the encoder. The
first failure of an outage is logged once and counted; for `retry_after_s` after a failure no
call goes out at all (requests must not each pay a timeout), then the next call tries again on a
fresh connection, and its success ends the outage.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from labelgate.server.metrics import SharedCacheMetrics

log = logging.getLogger(__name__)

TIER = "redis"
RETRY_AFTER_S = 1.0
CHUNK_BYTES = 4 * 1024 * 1024 - 64  # leaves room for Redis's string header in the 4 MiB class

# Delete the lock only if it is still ours: after its PX ran out another replica may hold it.
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class Lock(enum.Enum):
    ACQUIRED = "acquired"
    BUSY = "busy"  # another replica holds it
    UNAVAILABLE = "unavailable"  # Redis down: go on without single flight


class _Down(Exception):
    """The call did not work out (Redis down, slow, or refusing this command)."""


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


class RedisFeatureStore:
    def __init__(self, url: str, ttl_seconds: int, metrics: SharedCacheMetrics | None = None, *,
                 timeout_s: float = 0.5, retry_after_s: float = RETRY_AFTER_S):
        self.url, self.ttl_seconds, self.timeout_s, self.retry_after_s = url, ttl_seconds, timeout_s, retry_after_s
        self.metrics = metrics
        # One retry on a fresh connection covers pooled connections left dead by a Redis restart.
        self._client = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError],
        )
        self._unlock = self._client.register_script(_UNLOCK)
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._set_up(True)

    async def get(self, key: str) -> bytes | None:
        try:
            chunks = await self._call(self._client.hgetall(key))
        except _Down:
            return None
        if not chunks:
            self.count("miss")
            return None
        try:
            data = b"".join(chunks[str(index).encode()] for index in range(len(chunks)))
        except KeyError:  # not a value this store wrote
            self.count("error")
            return None
        self.count("hit")
        return data

    async def put(self, key: str, data: bytes) -> bool:
        chunks = {str(index): data[offset:offset + CHUNK_BYTES] for index, offset in enumerate(range(0, len(data), CHUNK_BYTES))}
        transaction = self._client.pipeline(transaction=True)
        transaction.delete(key)
        transaction.hset(key, mapping=chunks)
        transaction.expire(key, self.ttl_seconds)
        try:
            await self._call(transaction.execute())
        except _Down:
            return False
        self.count("write")
        return True

    async def try_lock(self, key: str, token: str, ttl_s: float) -> Lock:
        try:
            taken = await self._call(self._client.set(key, token, nx=True, px=max(1, int(ttl_s * 1000))))
        except _Down:
            return Lock.UNAVAILABLE
        return Lock.ACQUIRED if taken else Lock.BUSY

    async def unlock(self, key: str, token: str) -> None:
        try:
            await self._call(self._unlock(keys=[key], args=[token]))
        except _Down:
            pass  # it expires by itself

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, command):
        """The command's result, or _Down (counted, logged once per outage) when Redis fails."""
        if self._down_since is not None and time.monotonic() < self._retry_at:
            command.close()  # never awaited: do not leave a pending coroutine behind
            self.count("skipped")
            raise _Down
        try:
            # Socket timeouts bound each read and write; this bounds the whole call (DNS, retry).
            result = await asyncio.wait_for(command, timeout=4 * self.timeout_s)
        except ResponseError as error:  # Redis is up but refused this command (e.g. a key of another type)
            self.count("error")
            log.debug("shared feature cache: Redis refused a command: %s", error)
            raise _Down from None
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            self.count("error")
            self._went_down(error)
            raise _Down from None
        if self._down_since is not None:
            log.info("shared feature cache: Redis at %s is back after %.1f s", redact(self.url),
                     time.monotonic() - self._down_since)
            self._down_since = None
            self._set_up(True)
        return result

    def _went_down(self, error: Exception) -> None:
        now = time.monotonic()
        self._retry_at = now + self.retry_after_s
        if self._down_since is None:
            self._down_since = now
            self._set_up(False)
            if self.metrics is not None:
                self.metrics.outages.labels(TIER).inc()
            log.warning("shared feature cache: Redis at %s unreachable (%s: %s); serving from the local cache and the "
                        "encoder, retrying every %.0f s", redact(self.url), type(error).__name__, error, self.retry_after_s)

    def count(self, event: str) -> None:
        if self.metrics is not None:
            self.metrics.count(TIER, event)

    def _set_up(self, up: bool) -> None:
        if self.metrics is not None:
            self.metrics.up.labels(TIER).set(1 if up else 0)
