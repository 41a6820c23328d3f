import asyncio


from labelgate.server.cache import ByteLRUCache
from labelgate.server.metrics import Metrics


def make(max_bytes=100):
    metrics = Metrics()
    return ByteLRUCache("features", max_bytes, len, metrics.cache), metrics


def sample(metrics, event):
    return metrics.registry.get_sample_value("labelgate_cache_events_total", {"cache": "features", "event": event}) or 0


def test_byte_budget_evicts_least_recently_used():
    cache, metrics = make(100)
    cache.put("a", b"x" * 40)
    cache.put("b", b"x" * 40)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"x" * 40)
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.bytes_used == 80 <= cache.max_bytes
    assert sample(metrics, "evictions") == 1
    assert metrics.registry.get_sample_value("labelgate_cache_bytes", {"cache": "features"}) == 80


def test_never_exceeds_budget_under_a_stream_of_entries():
    cache, _ = make(1000)
    for index in range(200):
        cache.put(index, b"x" * (index % 97 + 1))
        assert cache.bytes_used <= 1000
    assert cache.bytes_used == sum(len(cache.peek(k)) for k in list(cache._entries))


def test_entry_larger_than_budget_is_not_cached():
    cache, _ = make(10)
    cache.put("big", b"x" * 11)
    assert "big" not in cache and cache.bytes_used == 0


def test_replacing_a_key_keeps_byte_count_right():
    cache, _ = make(100)
    cache.put("a", b"x" * 30)
    cache.put("a", b"x" * 50)
    assert cache.bytes_used == 50 and len(cache) == 1


async def test_concurrent_misses_compute_once():
    cache, metrics = make(1000)
    calls = 0

    async def compute():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return b"value"

    results = await asyncio.gather(*(cache.get_or_compute("k", compute) for _ in range(5)))
    assert calls == 1
    assert all(value == b"value" and not hit for value, hit in results)
    assert sample(metrics, "coalesced") == 4
    assert await cache.get_or_compute("k", compute) == (b"value", True)
    assert calls == 1


async def test_failed_computation_reaches_every_waiter_and_is_not_cached():
    cache, _ = make(1000)

    async def fail():
        await asyncio.sleep(0.01)
        raise ValueError("encoder broke")

    results = await asyncio.gather(*(cache.get_or_compute("k", fail) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert "k" not in cache


async def test_one_cancelled_waiter_does_not_cancel_the_others():
    cache, _ = make(1000)
    started = asyncio.Event()

    async def compute():
        started.set()
        await asyncio.sleep(0.05)
        return b"v"

    first = asyncio.create_task(cache.get_or_compute("k", compute))
    second = asyncio.create_task(cache.get_or_compute("k", compute))
    await started.wait()
    first.cancel()
    assert await second == (b"v", False)
    assert first.cancelled()
    assert "k" in cache


async def test_computation_is_cancelled_when_every_waiter_has_gone():
    cache, _ = make(1000)
    cancelled = asyncio.Event()

    async def compute():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(cache.get_or_compute("k", compute))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.wait_for(cancelled.wait(), 1)
    # A new caller starts a fresh computation rather than inheriting the cancelled one.
    async def quick():
        return b"fresh"

    assert await cache.get_or_compute("k", quick) == (b"fresh", False)
