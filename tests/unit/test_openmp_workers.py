"""A thread that ran a model hands its OpenMP workers back (see server/openmp_workers.py)."""

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from labelgate.server.batcher import DynamicBatcher
from labelgate.server.openmp_workers import loaded_libgomp, in_worker_thread, released_after
from openmp_threads import eventually, parallel_op

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc and names threads with prctl"),
    pytest.mark.skipif(torch.get_num_threads() < 2, reason="one intra-op thread: OpenMP starts no team"),
    pytest.mark.skipif(loaded_libgomp() is None, reason="PyTorch here does not run on libgomp"),
]


def test_a_thread_keeps_its_team_unless_released():
    with ThreadPoolExecutor(1) as plain, ThreadPoolExecutor(1) as releasing:
        assert plain.submit(parallel_op, "lg-plain").result() > 1  # the team exists while it runs
        assert eventually("lg-plain", 1) > 1  # and stays after the call: the behaviour being fixed
        assert releasing.submit(released_after, parallel_op, "lg-released").result() > 1
        assert eventually("lg-released", 1) == 1


def test_released_even_when_the_call_fails():
    def failing():
        parallel_op("lg-failing")
        raise ValueError("bad input")

    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError):
            pool.submit(released_after, failing).result()
        assert eventually("lg-failing", 1) == 1


async def test_in_worker_thread_releases():
    assert await in_worker_thread(parallel_op, "lg-to-thread") > 1
    assert eventually("lg-to-thread", 1) == 1  # the loop's executor thread lives on; its team does not


async def test_a_batchers_worker_releases_its_team_after_each_batch():
    batcher = DynamicBatcher("encode", "omp", lambda items: [parallel_op("lg-batcher") for _ in items],
                             max_batch_size=4, max_delay_s=0.0, max_queue=8)
    batcher.start()
    try:
        assert await batcher.submit(1) > 1
        assert eventually("lg-batcher", 1) == 1
    finally:
        await batcher.close()
