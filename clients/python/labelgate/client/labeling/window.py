"""A bounded in-flight window over a thread pool: at most `window` calls submitted and not yet
handed back, so memory stays flat however long the input is, while enough requests are in flight
to keep the servers' batchers full."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait


def bounded_map(function: Callable, items: Iterable, workers: int, window: int | None = None) -> Iterator[tuple]:
    """Yields (item, result, error) as calls finish (not in input order); exactly one of result
    and error is None. `items` is pulled lazily, in the caller's thread, only when there is room.
    Stop iterating (close the generator) to stop submitting; calls in flight are then waited for."""
    window = window or 2 * workers
    with ThreadPoolExecutor(workers, thread_name_prefix="labelgate-job") as pool:
        pending: dict[Future, object] = {}
        source = iter(items)
        exhausted = False
        try:
            while pending or not exhausted:
                while not exhausted and len(pending) < window:
                    item = next(source, _END)
                    if item is _END:
                        exhausted = True
                    else:
                        pending[pool.submit(function, item)] = item
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    error = future.exception()
                    yield item, (None if error else future.result()), error
        finally:
            for future in pending:
                future.cancel()


_END = object()
