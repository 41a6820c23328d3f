import asyncio
import os
import sys
import threading
import time

import pytest

from labelgate.server.batcher import DynamicBatcher
from labelgate.core.errors import DeadlineExceeded, NotReady, Overloaded
from labelgate.server.metrics import Metrics


class Recorder:
    """A backend that records the batches it was given and doubles each item."""

    def __init__(self, delay=0.0, fail_on=None):
        self.batches = []
        self.delay = delay
        self.fail_on = fail_on
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items):
        self.release.wait(5)
        self.batches.append(list(items))
        time.sleep(self.delay)
        return [ValueError(f"bad {i}") if i == self.fail_on else i * 2 for i in items]


async def started(backend, **kwargs):
    options = dict(max_batch_size=4, max_delay_s=0.05, max_queue=100)
    options.update(kwargs)
    batcher = DynamicBatcher("decode", "m", backend, metrics=Metrics().batch, **options)
    batcher.start()
    return batcher


async def test_concurrent_items_share_batches_up_to_the_max_size():
    backend = Recorder()
    batcher = await started(backend)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
    await batcher.close()
    assert results == [i * 2 for i in range(10)]
    assert [len(b) for b in backend.batches] == [4, 4, 2]


async def test_a_lone_item_waits_at_most_the_delay():
    backend = Recorder()
    batcher = await started(backend, max_delay_s=0.02)
    begin = time.perf_counter()
    assert await batcher.submit(3) == 6
    assert time.perf_counter() - begin < 1.0
    await batcher.close()
    assert backend.batches == [[3]]


async def test_a_lone_cold_click_is_not_held_for_either_stages_delay():
    """A labeler's click on a new image goes through the encoder's batcher, then the decoder's: alone,
    it waits for company in neither (an hour's delay would hold it past the guard)."""
    encoder, decoder = Recorder(), Recorder()
    encode, decode = await started(encoder, max_delay_s=3600), await started(decoder, max_delay_s=3600)
    try:
        features = await asyncio.wait_for(encode.submit(3), 30)
        assert await asyncio.wait_for(decode.submit(features), 30) == 12
    finally:
        await encode.close()
        await decode.close()
    assert (encoder.batches, decoder.batches) == ([[3]], [[6]])


async def test_zero_delay_still_batches_what_queued_during_a_call():
    backend = Recorder()
    backend.release.clear()
    batcher = await started(backend, max_delay_s=0.0)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.02)  # item 0 is inside the backend, blocked
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 4)]
    await asyncio.sleep(0.02)
    backend.release.set()
    await asyncio.gather(first, *rest)
    await batcher.close()
    assert backend.batches == [[0], [1, 2, 3]]


async def test_full_queue_is_overloaded_not_a_hang():
    backend = Recorder()
    backend.release.clear()
    batcher = await started(backend, max_batch_size=1, max_delay_s=0.0, max_queue=2)
    running = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.02)
    queued = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="queue is full"):
        await batcher.submit(3)
    backend.release.set()
    assert await asyncio.gather(running, *queued) == [0, 2, 4]
    await batcher.close()


async def test_cancelled_items_are_dropped_before_running():
    backend = Recorder()
    backend.release.clear()
    batcher = await started(backend, max_batch_size=8, max_delay_s=0.0)
    blocker = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.02)
    doomed = asyncio.create_task(batcher.submit(1))
    kept = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    doomed.cancel()
    backend.release.set()
    assert await kept == 4 and await blocker == 0
    await batcher.close()
    assert [1] not in backend.batches and all(1 not in b for b in backend.batches)


async def test_expired_items_fail_with_deadline_exceeded_without_running():
    backend = Recorder()
    backend.release.clear()
    batcher = await started(backend, max_delay_s=0.0)
    blocker = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.02)
    loop = asyncio.get_running_loop()
    expired = asyncio.create_task(batcher.submit(5, deadline=loop.time() + 0.01))
    await asyncio.sleep(0.05)
    backend.release.set()
    with pytest.raises(DeadlineExceeded):
        await expired
    await blocker
    await batcher.close()
    assert all(5 not in b for b in backend.batches)


async def test_one_bad_item_does_not_fail_the_batch():
    batcher = await started(Recorder(fail_on=2))
    results = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    await batcher.close()
    assert results[0] == 0 and results[1] == 2 and results[3] == 6
    assert isinstance(results[2], ValueError)


async def test_a_crashing_backend_fails_every_item_of_its_batch_and_keeps_serving():
    calls = []

    def crash_once(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return list(items)

    batcher = await started(crash_once)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await batcher.submit(7) == 7
    await batcher.close()


async def test_closed_batcher_refuses_and_fails_queued_work():
    backend = Recorder()
    backend.release.clear()
    batcher = await started(backend, max_batch_size=1, max_delay_s=0.0)
    running = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.02)
    queued = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0.02)
    backend.release.set()
    await closing
    with pytest.raises(NotReady):
        await queued
    with pytest.raises(NotReady):
        await batcher.submit(2)
    running.cancel()


def test_rejects_nonsense_limits():
    with pytest.raises(ValueError):
        DynamicBatcher("decode", "m", list, max_batch_size=0, max_delay_s=0, max_queue=1)


def _priority_of_this_thread_and_of_one_it_starts(items):
    """What a model call sees: its own (policy, niceness), and that of a helper thread it starts
    (as OpenMP does)."""
    seen = {}

    def priority():
        thread = threading.get_native_id()
        return os.sched_getscheduler(thread), os.getpriority(os.PRIO_PROCESS, thread)

    helper = threading.Thread(target=lambda: seen.setdefault("helper", priority()))
    helper.start()
    helper.join()
    return [(priority(), seen["helper"]) for _ in items]


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priorities are Linux's")
async def test_heavy_stage_workers_and_the_threads_they_start_run_at_the_lower_priority():
    inherited = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))
    batchers = {priority: await started(_priority_of_this_thread_and_of_one_it_starts, worker_priority=priority)
                for priority in ("idle", "low", "normal")}
    try:
        seen = {priority: await batcher.submit(1) for priority, batcher in batchers.items()}
    finally:
        for batcher in batchers.values():
            await batcher.close()
    assert seen["idle"] == ((os.SCHED_IDLE, inherited[1]),) * 2
    assert seen["low"] == ((inherited[0], max(19, inherited[1])),) * 2
    assert seen["normal"] == (inherited,) * 2
    assert (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)) == inherited  # the loop's thread is untouched


def test_an_unknown_priority_is_refused_when_the_batcher_is_made():
    with pytest.raises(ValueError, match="unknown worker priority 'urgent'"):
        DynamicBatcher("encode", "m", Recorder(), 4, 0.05, 100, worker_priority="urgent")
