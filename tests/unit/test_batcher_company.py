"""The batcher waits for company only under load: a lone caller is never held back by the delay,
while requests coming in together still share a batch."""

import asyncio

from labelgate.server.batcher import DynamicBatcher
from labelgate.server.metrics import Metrics


class Recorder:
    def __init__(self):
        self.batches = []

    def __call__(self, items):
        self.batches.append(list(items))
        return [i * 2 for i in items]


def batcher_with(backend, max_delay_s: float, max_batch_size: int = 8) -> DynamicBatcher:
    batcher = DynamicBatcher("decode", "m", backend, max_batch_size, max_delay_s, 100, Metrics().batch)
    batcher.start()
    return batcher


async def test_a_lone_caller_does_not_wait_out_the_delay():
    backend = Recorder()
    batcher = batcher_with(backend, max_delay_s=3600)  # an hour: waiting it out would time out below
    assert await asyncio.wait_for(batcher.submit(1), 60) == 2
    await batcher.close()
    assert backend.batches == [[1]]


async def test_requests_coming_in_together_still_wait_for_each_other():
    backend = Recorder()
    batcher = batcher_with(backend, max_delay_s=30, max_batch_size=2)
    first = asyncio.create_task(batcher.submit(0))  # nothing came before it: runs at once
    await first
    second = asyncio.create_task(batcher.submit(1))  # right after another request: waits for company
    await asyncio.sleep(0.05)
    assert not second.done()
    third = asyncio.create_task(batcher.submit(2))
    assert await asyncio.wait_for(asyncio.gather(second, third), 60) == [2, 4]
    await batcher.close()
    assert backend.batches == [[0], [1, 2]]
