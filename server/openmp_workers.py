"""Threads that run a model hand their OpenMP workers back when the call ends.

PyTorch's CPU kernels (and MKL, oneDNN) run on OpenMP: libgomp in the official wheels. Each thread
that runs a parallel op gets its own team of workers and keeps it for as long as the thread lives.
Once the teams of all threads together outnumber the CPUs, libgomp stops letting an idle worker
spin before it sleeps (100 spins instead of 300,000), so each of the thousands of small ops in a
tracking step or a prompt decode pays a futex wake-up. A server runs models on several long-lived
threads (one per batcher, the loader, the video steps), so after warm-up every call ran in that
throttled mode: on 2 cores a SAM 2 tracking step took about 2.5x as long as the same step in a
process with one computing thread. Releasing a thread's team after each call leaves only the teams
of threads computing right now, so a lone call runs at full speed and calls that really overlap
still share the cores politely. Re-creating a team costs one thread start per call.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import sys
from typing import Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

OMP_PAUSE_SOFT = 1  # omp_pause_resource_t: frees the calling thread's team, keeps the runtime

_pause_all: Callable[[int], int] | None = None


def release_openmp_workers() -> None:
    """Ends the calling thread's OpenMP team (libgomp's `omp_pause_resource_all`); its next parallel
    op starts a new one. Does nothing before torch is imported or where libgomp is not in use."""
    global _pause_all
    if _pause_all is None:
        if "torch" not in sys.modules:
            return
        _pause_all = _find_pause_all()
    _pause_all(OMP_PAUSE_SOFT)


def released_after(function: Callable[..., T], *args) -> T:
    """`function(*args)`, then the thread's OpenMP workers are handed back, whatever happened."""
    try:
        return function(*args)
    finally:
        release_openmp_workers()


async def in_worker_thread(function: Callable[..., T], *args) -> T:
    """`asyncio.to_thread` for blocking work that may run a model or other torch ops."""
    return await asyncio.to_thread(released_after, function, *args)


def _find_pause_all() -> Callable[[int], int]:
    path = loaded_libgomp()
    if path is None:
        log.debug("libgomp is not loaded (no OpenMP, or another runtime): threads keep their workers")
        return lambda kind: 0
    try:
        return ctypes.CDLL(path).omp_pause_resource_all  # the library already loaded: same handle
    except (OSError, AttributeError) as error:  # a libgomp older than OpenMP 5.0 has no pause
        log.warning("cannot release OpenMP workers through %s (%s): CPU models may run slower", path, error)
        return lambda kind: 0


def loaded_libgomp() -> str | None:
    """The path of the libgomp this process has loaded, if any (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if "/libgomp" in path:
                    return path
    except OSError:  # not Linux
        pass
    return None
