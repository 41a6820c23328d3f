"""Health follows backends that can become unready while the server runs (remote ones, e.g.
Triton): NOT_SERVING while any of them is not ready, SERVING again once all are, no restart.

Every backend answers `ready() -> str | None` (None = ready, else why not). The checks
are blocking calls, run in threads, once per interval.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0


class ReadinessMonitor:
    def __init__(self, checks: Sequence[Callable[[], str | None]], set_serving: Callable[[bool], Awaitable[None]],
                 interval_s: float = DEFAULT_INTERVAL_S):
        self.checks = list(checks)
        self.set_serving = set_serving
        self.interval_s = interval_s
        self.serving = True
        self._task: asyncio.Task | None = None

    @classmethod
    def for_backends(cls, backends, set_serving, interval_s: float = DEFAULT_INTERVAL_S) -> "ReadinessMonitor":
        checks = [backend.ready for backend in backends]
        return cls(checks, set_serving, interval_s)

    def start(self) -> None:
        if self.checks:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="readiness")

    async def check_once(self) -> list[str]:
        """The reasons some backend is not ready (empty: all ready); health follows them."""
        reasons = [reason for reason in await asyncio.gather(*(asyncio.to_thread(check) for check in self.checks)) if reason]
        serving = not reasons
        if serving != self.serving:
            if serving:
                log.info("backends ready again: SERVING")
            else:
                log.warning("NOT_SERVING: %s", "; ".join(reasons))
            self.serving = serving
            await self.set_serving(serving)
        return reasons

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check_once()
            except Exception:  # a broken check must not end the watch
                log.exception("readiness check failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
