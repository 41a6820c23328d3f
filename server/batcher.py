"""Dynamic batching: requests that arrive together run as one model call.

A batch closes when it is full or when its oldest request has waited `max_delay`. Waiting only
pays under load, so a batch waits for company only when requests are coming in together (the
previous batch had several, or its oldest request came within `max_delay` of the one before): a
labeler clicking alone is never held back. Requests whose caller has gone (cancelled) or whose
deadline has passed are dropped before the call. A full queue fails fast with `Overloaded`.
Model calls run on one worker thread per batcher, so the event loop stays free and a model is
never entered twice at once; the thread hands its OpenMP workers back after each call
(openmp_workers). A batcher for a heavy stage can run its worker at a lower CPU priority
(`worker_priority`), so that on a CPU the short calls of other stages go first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

from labelgate.core.errors import DeadlineExceeded, NotReady, Overloaded
from labelgate.server.metrics import BatchMetrics
from labelgate.server.openmp_workers import released_after

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


# CPU priorities of a worker thread: SCHED_IDLE (runs when nothing else of normal priority wants
# the core, and is preempted at once when something does), niceness 19, or as inherited.
IDLE, LOW, NORMAL = "idle", "low", "normal"
PRIORITIES = (IDLE, LOW, NORMAL)
LOW_NICENESS = 19


def lower_thread_priority(priority: str, stage: str) -> None:
    """Lowers the calling thread to `priority`. On Linux the scheduling policy and niceness are per
    thread, and the threads a model library starts from this one (OpenMP, MKL) inherit them, so
    setting them before the first model call lowers the whole stage. Failing costs only priority."""
    if priority == NORMAL:
        return
    if sys.platform != "linux":
        log.info("%s worker: per-thread priorities need Linux; running at normal priority", stage)
        return
    thread = threading.get_native_id()
    try:
        if priority == IDLE:
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.setpriority(os.PRIO_PROCESS, thread, LOW_NICENESS)
    except OSError as error:  # e.g. a sandbox that refuses the call, or a process already nicer than 19
        log.warning("%s worker: could not set priority %s (%s); running at the inherited priority", stage, priority, error)


@dataclass
class _Pending(Generic[T]):
    item: T
    future: asyncio.Future
    deadline: float | None  # event-loop time
    enqueued: float
    since_previous: float  # seconds since the request before it arrived


class DynamicBatcher(Generic[T, R]):
    def __init__(
        self,
        stage: str,
        model: str,
        run_batch: Callable[[Sequence[T]], list],
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        metrics: BatchMetrics | None = None,
        worker_priority: str = NORMAL,
    ):
        if max_batch_size < 1 or max_queue < 1 or max_delay_s < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1 and max_delay_s >= 0")
        if worker_priority not in PRIORITIES:  # checked here: a failing thread initializer breaks the pool
            raise ValueError(f"unknown worker priority {worker_priority!r}; choose one of {PRIORITIES}")
        self.stage, self.model = stage, model
        self._run_batch = run_batch
        self.max_batch_size, self.max_delay_s, self.max_queue = max_batch_size, max_delay_s, max_queue
        self._metrics = metrics
        self._pending: deque[_Pending[T]] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{stage}-{model}",
                                            initializer=lower_thread_priority, initargs=(worker_priority, stage))
        self._worker: asyncio.Task | None = None
        self._closed = False
        self._last_arrival = float("-inf")
        self._last_batch_size = 0

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.stage}")

    async def submit(self, item: T, deadline: float | None = None) -> R:
        """Runs `item` in some batch and returns its result (or raises its exception)."""
        if self._closed:
            raise NotReady("the server is shutting down")
        if len(self._pending) >= self.max_queue:
            self._drop("queue_full")
            raise Overloaded(
                f"the {self.stage} queue is full ({self.max_queue} requests waiting); retry with backoff"
            )
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        now = loop.time()
        self._pending.append(_Pending(item, future, deadline, now, now - self._last_arrival))
        self._last_arrival = now
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Stops taking work, fails what is still queued, and waits for the running call."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.set_exception(NotReady("the server is shutting down"))
        await asyncio.to_thread(self._executor.shutdown, True)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch(loop)
            live = self._live(batch, loop.time())
            if not live:
                continue
            await self._execute(live, loop)

    async def _next_batch(self, loop) -> list[_Pending[T]]:
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        close_at = self._pending[0].enqueued + (self.max_delay_s if self._company_expected() else 0.0)
        while len(self._pending) < self.max_batch_size:
            remaining = close_at - loop.time()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        size = min(self.max_batch_size, len(self._pending))
        self._last_batch_size = size
        return [self._pending.popleft() for _ in range(size)]

    def _company_expected(self) -> bool:
        """Whether others are likely to join the oldest request soon: under load, not a lone caller."""
        if self._last_batch_size > 1 or len(self._pending) > 1:
            return True
        return self._pending[0].since_previous < self.max_delay_s

    def _live(self, batch: list[_Pending[T]], now: float) -> list[_Pending[T]]:
        live = []
        for pending in batch:
            if pending.future.done():  # the caller was cancelled
                self._drop("cancelled")
            elif pending.deadline is not None and now >= pending.deadline:
                self._drop("expired")
                pending.future.set_exception(DeadlineExceeded(f"the deadline passed while waiting for the {self.stage} model"))
            else:
                live.append(pending)
        return live

    async def _execute(self, live: list[_Pending[T]], loop) -> None:
        started = loop.time()
        wall = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, released_after, self._run_batch, [p.item for p in live])
            if len(results) != len(live):
                raise RuntimeError(f"{self.stage} backend returned {len(results)} results for {len(live)} items")
        except Exception as error:  # the whole call failed: every item gets the error
            log.exception("%s batch of %d failed", self.stage, len(live))
            results = [error] * len(live)
        if self._metrics is not None:
            self._metrics.model_seconds.labels(self.stage, self.model).observe(time.perf_counter() - wall)
            self._metrics.batch_size.labels(self.stage, self.model).observe(len(live))
            for pending in live:
                self._metrics.queue_wait.labels(self.stage, self.model).observe(started - pending.enqueued)
        for pending, result in zip(live, results):
            if pending.future.done():
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)

    def _drop(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.dropped.labels(self.stage, self.model, reason).inc()
