"""The one thread that runs every video tracking step of a server.

A Propagate is a long run of small steps, each followed by a hop back to the event loop to send the
frame. Run on one thread, the steps share one OpenMP team, kept from step to step and handed back
once no step has come for `idle_release_s` (see openmp_workers: a team held by an idle thread
would slow every other model call). Sessions take turns step by step, in arrival order.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Callable, TypeVar

from labelgate.server.openmp_workers import release_openmp_workers

T = TypeVar("T")
IDLE_RELEASE_S = 0.05


class TrackingThread:
    def __init__(self, idle_release_s: float = IDLE_RELEASE_S):
        self.idle_release_s = idle_release_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def run(self, function: Callable[..., T], *args) -> T:
        """`function(*args)` on the tracking thread. A cancelled caller still waits for it, so that the
        next call on the session never runs beside a frame still being computed."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="video-tracking", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._queue.put((function, args, loop, done))
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait([done])
            raise

    def close(self) -> None:
        """Ends the thread once the calls already queued have run."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None

    def _work(self) -> None:
        holding = False  # whether a call ran since the team was last handed back
        while True:
            try:
                item = self._queue.get(timeout=self.idle_release_s) if holding else self._queue.get()
            except queue.Empty:
                release_openmp_workers()
                holding = False
                continue
            if item is None:
                release_openmp_workers()
                return
            function, args, loop, done = item
            try:
                outcome = (True, function(*args))
            except BaseException as error:  # handed to the caller, as a thread pool would
                outcome = (False, error)
            holding = True
            try:
                loop.call_soon_threadsafe(_settle, done, outcome)
            except RuntimeError:  # the event loop has closed: nobody is waiting
                pass


def _settle(done: asyncio.Future, outcome: tuple[bool, object]) -> None:
    if done.cancelled():
        return
    succeeded, value = outcome
    if succeeded:
        done.set_result(value)
    else:
        done.set_exception(value)
