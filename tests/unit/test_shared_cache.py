"""TieredFeatureCache over a real redis-server: replicas share features (SAM 2's and SAM 3's), single
flight across replicas never deadlocks, and Redis down or broken is never a failed request."""

from __future__ import annotations

import asyncio
import logging
import uuid

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from labelgate.models.backend import ImageFeatures
from labelgate.server.cache import ByteLRUCache
from labelgate.core.errors import DeadlineExceeded
from labelgate.server.metrics import SharedCacheMetrics
from labelgate.server.redis_tier import RedisFeatureStore
from labelgate.server.feature_cache import TieredFeatureCache
from redis_server import free_port
from tolerances import FP16_STORAGE_ATOL, FP16_STORAGE_RTOL

KEY = ("image-1", "sam2_test", "v1")


class Replica:
    """One process's view: its own local LRU and metrics, the shared Redis, an encoder that counts."""

    def __init__(self, url: str, prefix: str, lock_seconds: float = 10.0, encode_delay: asyncio.Event | None = None):
        self.registry = CollectorRegistry()
        store = RedisFeatureStore(url, ttl_seconds=60, metrics=SharedCacheMetrics(self.registry), timeout_s=0.2)
        local = ByteLRUCache("features", 64 * 1024 * 1024, lambda f: f.nbytes)
        self.cache = TieredFeatureCache(local, store, key_prefix=prefix, kind="numpy", lock_seconds=lock_seconds)
        self.encodes = 0
        self.encode_delay = encode_delay

    async def compute(self) -> ImageFeatures:
        self.encodes += 1
        if self.encode_delay is not None:
            await self.encode_delay.wait()
        return _features()

    async def get(self, key=KEY):
        return await asyncio.wait_for(self.cache.get_or_compute(key, self.compute), timeout=20)

    def events(self, event: str) -> float:
        return self.registry.get_sample_value("labelgate_shared_cache_events_total", {"tier": "redis", "event": event}) or 0.0

    def outages(self) -> float:
        return self.registry.get_sample_value("labelgate_shared_cache_outages_total", {"tier": "redis"}) or 0.0


def _features() -> ImageFeatures:
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal(shape).astype(np.float32) for shape in [(16, 8, 8), (4, 32, 32), (8, 16, 16)]]
    return ImageFeatures(arrays[0], tuple(arrays[1:]), (40, 60), sum(a.nbytes for a in arrays))


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def redis_client(redis_server):
    """A plain blocking client, to set the scene and look at what was written."""
    from redis import Redis

    with Redis.from_url(redis_server.url) as client:
        yield client


async def _close(*replicas: Replica) -> None:
    for replica in replicas:
        await replica.cache.close()


async def test_features_encoded_on_one_replica_are_a_hit_on_another(redis_server, prefix):
    a, b = Replica(redis_server.url, prefix), Replica(redis_server.url, prefix)
    try:
        on_a, hit_a = await a.get()
        on_b, hit_b = await b.get()
        by_id = await Replica(redis_server.url, prefix).cache.lookup(KEY)
    finally:
        await _close(a, b)

    assert (hit_a, hit_b) == (False, True)
    assert (a.encodes, b.encodes) == (1, 0)
    assert b.events("hit") == 1 and a.events("write") == 1
    # The shared tier stores image_embed as float16 (feature_codec.FP16_TENSORS).
    np.testing.assert_allclose(on_b.image_embed, on_a.image_embed, rtol=FP16_STORAGE_RTOL, atol=FP16_STORAGE_ATOL)
    assert by_id is not None and by_id.orig_hw == (40, 60)
    assert len(b.cache) == 1  # promoted into B's local tier


async def test_concurrent_misses_on_two_replicas_encode_once(redis_server, prefix):
    release = asyncio.Event()
    a = Replica(redis_server.url, prefix, encode_delay=release)
    b = Replica(redis_server.url, prefix, encode_delay=release)
    try:
        first = asyncio.create_task(a.get())
        while a.encodes == 0:  # A holds the lock and is encoding
            await asyncio.sleep(0.01)
        second = asyncio.create_task(b.get())
        await asyncio.sleep(0.2)  # B is polling for A's result
        release.set()
        (_, hit_a), (_, hit_b) = await first, await second
    finally:
        await _close(a, b)

    assert a.encodes + b.encodes == 1
    assert (hit_a, hit_b) == (False, True)
    assert b.events("lock_waited") == 1


async def test_a_dead_holder_blocks_only_until_its_lock_expires(redis_server, redis_client, prefix):
    replica = Replica(redis_server.url, prefix, lock_seconds=30)
    lock_key = replica.cache.redis_key(KEY) + ":lock"
    redis_client.set(lock_key, "a-replica-that-died", px=300)
    try:
        _, hit = await replica.get()
        published = redis_client.exists(replica.cache.redis_key(KEY))
    finally:
        await _close(replica)

    assert not hit and replica.encodes == 1
    assert replica.events("lock_acquired") == 1 and replica.events("lock_timeout") == 0
    assert published == 1


async def test_a_stuck_holder_is_waited_for_no_longer_than_the_bound(redis_server, redis_client, prefix):
    replica = Replica(redis_server.url, prefix, lock_seconds=0.3)
    lock_key = replica.cache.redis_key(KEY) + ":lock"
    redis_client.set(lock_key, "a-stuck-replica", px=60_000)
    try:
        _, hit = await replica.get()  # wait_for in Replica.get fails the test if this blocks 20 s
        holder = redis_client.get(lock_key)
    finally:
        await _close(replica)

    assert not hit and replica.encodes == 1
    assert replica.events("lock_timeout") == 1
    assert holder == b"a-stuck-replica"  # someone else's lock is never deleted


@pytest.mark.parametrize("foreign", ["a string key", "a hash of other bytes", "a hash with a gap"])
async def test_an_unreadable_entry_is_a_miss_and_gets_replaced(redis_server, redis_client, prefix, foreign):
    a, b = Replica(redis_server.url, prefix), Replica(redis_server.url, prefix)
    key = a.cache.redis_key(KEY)
    if foreign == "a string key":
        redis_client.set(key, b"not features")
    else:
        redis_client.hset(key, mapping={"0": b"not features"} if foreign == "a hash of other bytes" else {"1": b"x"})
    try:
        _, hit_a = await a.get()
        _, hit_b = await b.get()
    finally:
        await _close(a, b)

    assert not hit_a and a.encodes == 1 and a.events("error") >= 1
    assert a.outages() == 0  # Redis answered: not an outage
    assert hit_b and b.encodes == 0  # A's features replaced the foreign entry


async def test_redis_down_is_counted_and_logged_once_and_never_fails_a_request(prefix, caplog):
    replica = Replica(f"redis://127.0.0.1:{free_port()}/0", prefix)  # nothing listens there
    caplog.set_level(logging.WARNING, logger="labelgate.server.redis_tier")
    try:
        results = [await replica.get(("image-%d" % i, "sam2_test", "v1")) for i in range(5)]
        by_id = await replica.cache.lookup(("unknown", "sam2_test", "v1"))
    finally:
        await _close(replica)

    assert [hit for _, hit in results] == [False] * 5 and replica.encodes == 5
    assert by_id is None
    assert replica.outages() == 1
    assert replica.events("skipped") > 0  # within the retry interval nothing is sent at all
    assert sum("unreachable" in record.message for record in caplog.records) == 1


async def test_a_request_stops_waiting_for_another_replicas_lock_at_its_own_deadline(redis_server, redis_client, prefix):
    replica = Replica(redis_server.url, prefix, lock_seconds=60)  # the bound alone would wait a minute
    lock_key = replica.cache.redis_key(KEY) + ":lock"
    redis_client.set(lock_key, "a-busy-replica", px=60_000)
    deadline = asyncio.get_running_loop().time() + 0.3
    try:
        with pytest.raises(DeadlineExceeded, match="deadline"):
            # wait_for fails the test (TimeoutError, not DeadlineExceeded) if the deadline is ignored
            await asyncio.wait_for(replica.cache.get_or_compute(KEY, replica.compute, deadline), timeout=20)
        holder = redis_client.get(lock_key)
    finally:
        await _close(replica)

    assert replica.encodes == 0 and replica.events("lock_timeout") == 0
    assert holder == b"a-busy-replica"


async def test_one_callers_deadline_does_not_end_the_wait_of_others_for_the_same_image(redis_server, prefix):
    release = asyncio.Event()
    holder = Replica(redis_server.url, prefix, encode_delay=release)
    waiter = Replica(redis_server.url, prefix, lock_seconds=60)
    try:
        holding = asyncio.create_task(holder.get())
        while holder.encodes == 0:  # the holder has the lock and is encoding
            await asyncio.sleep(0.01)
        patient = asyncio.create_task(waiter.get())  # no deadline
        deadline = asyncio.get_running_loop().time() + 0.3
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(waiter.cache.get_or_compute(KEY, waiter.compute, deadline), timeout=20)
        release.set()
        (_, patient_hit), _ = await patient, await holding
    finally:
        await _close(holder, waiter)

    assert patient_hit and waiter.encodes == 0
    assert waiter.events("lock_waited") == 1


# --- SAM 3 features ------------------------------------------------------------------------------


class ConceptReplica(Replica):
    """A SAM 3 replica: concept features (FPN levels, tracker features), position encodings from the
    shapes, as `Sam3ConceptBackend.position_encodings` gives them."""

    def __init__(self, url: str, prefix: str):
        super().__init__(url, prefix)
        self.cache.kind, self.cache.position_encodings = "torch", self.position_encodings
        self.shapes_asked: list[tuple] = []

    def position_encodings(self, levels):
        import torch

        self.shapes_asked.append(tuple(tuple(level.shape) for level in levels))
        return tuple(torch.full(level.shape, float(index)) for index, level in enumerate(levels))

    async def compute(self):
        self.encodes += 1
        return _concept_features()


def _concept_features():
    import torch

    from labelgate.models.sam3.concepts import ConceptImageFeatures

    generator = torch.Generator().manual_seed(11)
    levels = tuple(torch.randn((1, 8, size, size), generator=generator) for size in (16, 8, 4, 2))
    numpy = _features()
    tracker = ImageFeatures(torch.from_numpy(numpy.image_embed), tuple(map(torch.from_numpy, numpy.high_res_feats)),
                            numpy.orig_hw, numpy.nbytes)
    positions = tuple(torch.zeros_like(level) for level in levels)
    nbytes = sum(level.numel() * 4 for level in levels) + tracker.nbytes
    return ConceptImageFeatures(levels, positions, (40, 60), nbytes, tracker)


async def test_sam3_features_encoded_on_one_replica_are_a_hit_on_another(redis_server, prefix):
    import torch

    a, b = ConceptReplica(redis_server.url, prefix), ConceptReplica(redis_server.url, prefix)
    try:
        on_a, hit_a = await a.get()
        on_b, hit_b = await b.get()
    finally:
        await _close(a, b)

    assert (hit_a, hit_b) == (False, True) and (a.encodes, b.encodes) == (1, 0)
    assert b.events("hit") == 1 and a.events("write") == 1
    assert on_b.nbytes == on_a.nbytes and on_b.orig_hw == on_a.orig_hw
    assert all(torch.equal(x, y) for x, y in zip(on_a.fpn_hidden_states, on_b.fpn_hidden_states, strict=True))  # lossless
    assert b.shapes_asked == [tuple((1, 8, size, size) for size in (16, 8, 4, 2))]  # B's own position encodings
    assert [float(p.flatten()[0]) for p in on_b.fpn_position_encoding] == [0.0, 1.0, 2.0, 3.0]
    assert torch.equal(on_b.tracker.image_embed, on_a.tracker.image_embed)
    assert all(torch.equal(x, y) for x, y in zip(on_a.tracker.high_res_feats, on_b.tracker.high_res_feats, strict=True))


async def test_features_the_codec_cannot_store_stay_local_with_one_warning(redis_server, prefix, caplog):
    class Unknown(Replica):
        async def compute(self):
            self.encodes += 1
            return type("OtherFeatures", (), {"nbytes": 64})()

    a, b = Unknown(redis_server.url, prefix), Unknown(redis_server.url, prefix)
    with caplog.at_level(logging.WARNING, logger="labelgate.server.feature_cache"):
        try:
            await a.get()
            await a.get(("image-2", "sam2_test", "v1"))
            _, hit_b = await b.get()
        finally:
            await _close(a, b)

    assert (a.encodes, b.encodes, hit_b) == (2, 1, False)
    assert a.events("write") == 0
    assert sum("its features stay in this process" in r.message for r in caplog.records) == 1 + 1  # once per replica
