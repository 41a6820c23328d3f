"""Timing helpers: timed calls, interleaved side-by-side sampling, medians, and throughput runs."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

SETTLE_S = 0.02  # lets the other side's idle threads go quiet before the next timed call


def timed(call: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def interleaved(sides: dict[str, Callable[[], object]], rounds: int, repeats: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Seconds per call for each side, the sides taking turns round after round. Odd rounds run
    the sides in reverse order, so neither always follows the other."""
    repeats = repeats or {}
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for round_index in range(rounds):
        order = list(sides.items())
        if round_index % 2:
            order.reverse()
        for name, call in order:
            for _ in range(repeats.get(name, 1)):
                time.sleep(SETTLE_S)
                samples[name].append(timed(call)[0])
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def throughput(call: Callable[[int], object], concurrency: int, total: int) -> float:
    """Requests per second when `concurrency` callers issue `total` calls (`call(i)`, i = 0..total-1)
    back to back."""
    next_index = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            call(index)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return total / (time.perf_counter() - started)
