"""When to try an RPC again, and how long to wait first: the one retry policy of every client.

Only UNAVAILABLE is retried (no connection yet, the models still loading, a server restarting):
every labelgate RPC is idempotent, so trying again is safe, while the other codes would only
fail the same way again. The waits grow exponentially with random jitter, so many clients that
lost the same server do not come back in lockstep. A call's deadline covers all its attempts:
no attempt starts, and no wait is begun, that would end after it.

Transport-free on purpose (no sleeping here): the sync client sleeps and the async one awaits
the delays that `Attempts.retry_delay` hands out.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import grpc

from labelgate.client.errors import LabelgateClientError

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` tries in all (1 = never retry). The wait before retry n (1, 2, ...) is
    ``min(max_backoff, initial_backoff * multiplier ** (n - 1))``, scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``."""

    max_attempts: int = 4
    initial_backoff: float = 0.25
    max_backoff: float = 4.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self):
        if not (isinstance(self.max_attempts, int) and self.max_attempts >= 1):
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("initial_backoff", "max_backoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 = the first retry)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        factor = 1.0 + self.jitter * (2.0 * (rng or random).random() - 1.0)
        return base * factor

    def start(self, timeout: float | None, clock=time.monotonic, rng: random.Random | None = None) -> "Attempts":
        """The bookkeeping for one call with `timeout` seconds in all (None = no deadline)."""
        return Attempts(self, timeout, clock, rng)


NO_RETRIES = RetryPolicy(max_attempts=1)


class Attempts:
    """One call's attempts against its deadline. Ask `timeout()` before each attempt; after a
    failure, `retry_delay(error)` gives the seconds to wait before the next one, or None when
    the error should be raised."""

    def __init__(self, policy: RetryPolicy, timeout: float | None, clock=time.monotonic,
                 rng: random.Random | None = None):
        self.policy = policy
        self.retries = 0
        self._clock = clock
        self._rng = rng
        self._deadline = None if timeout is None else clock() + timeout

    def timeout(self) -> float | None:
        """What is left of the call's deadline, for the next attempt (None = no deadline)."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self._clock())

    def retry_delay(self, error: LabelgateClientError) -> float | None:
        if error.code not in RETRYABLE_CODES or self.retries + 1 >= self.policy.max_attempts:
            return None
        delay = self.policy.backoff(self.retries + 1, self._rng)
        if self._deadline is not None and self._clock() + delay >= self._deadline:
            return None  # the next attempt could not finish in time: report this failure now
        self.retries += 1
        return delay
