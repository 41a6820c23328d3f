"""The video tracking thread: one thread, calls in order, errors to the caller, its OpenMP team
kept while steps keep coming and handed back once they stop (see server/tracking_thread.py)."""

import asyncio
import sys
import threading
import time

import pytest
import torch

from labelgate.server.openmp_workers import loaded_libgomp
from labelgate.server.tracking_thread import TrackingThread
from openmp_threads import eventually, parallel_op, threads_named


@pytest.fixture
async def tracking():
    thread = TrackingThread(idle_release_s=1.0)
    yield thread
    thread.close()


async def test_calls_run_in_order_on_one_thread(tracking):
    seen = []
    results = await asyncio.gather(*(tracking.run(lambda i=i: seen.append((i, threading.get_ident())) or i * 10)
                                     for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert len({ident for _, ident in seen}) == 1 and seen[0][1] != threading.get_ident()


async def test_an_error_reaches_the_caller_and_the_thread_goes_on(tracking):
    def fail():
        raise ValueError("frame 9 is out of range")

    with pytest.raises(ValueError, match="frame 9"):
        await tracking.run(fail)
    assert await tracking.run(lambda: "still serving") == "still serving"


async def test_a_cancelled_caller_waits_for_the_running_call(tracking):
    started, finished = threading.Event(), threading.Event()

    def slow():
        started.set()
        time.sleep(0.3)
        finished.set()

    call = asyncio.ensure_future(tracking.run(slow))
    await asyncio.to_thread(started.wait, 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert finished.is_set()  # the caller's lock on the session is released only after the step


@pytest.mark.skipif(sys.platform != "linux" or torch.get_num_threads() < 2 or loaded_libgomp() is None,
                    reason="counts libgomp's workers in /proc")
async def test_the_team_is_kept_between_steps_and_handed_back_when_idle(tracking):
    assert await tracking.run(parallel_op, "lg-tracking") > 1
    assert threads_named("lg-tracking") > 1  # kept for the next step (released only after 1 s idle)
    assert eventually("lg-tracking", 1) == 1
