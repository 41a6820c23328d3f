"""Counting a thread's OpenMP workers: libgomp's workers inherit the name of the thread that starts
them, so naming the calling thread lets a test count exactly that thread's team in /proc (Linux)."""

import ctypes
import os
import time

import torch

PR_SET_NAME = 15


def parallel_op(name: str) -> int:
    """Names the calling thread, runs an op large enough for OpenMP to use every thread, and returns
    how many threads carry the name (this one plus its team)."""
    ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode())
    torch.ones(4_000_000).mul_(2)
    return threads_named(name)


def threads_named(name: str) -> int:
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                count += comm.read().strip() == name
        except FileNotFoundError:  # a thread that just ended
            pass
    return count


def eventually(name: str, expected: int) -> int:
    """The count once exiting workers are gone (they leave within milliseconds)."""
    deadline = time.monotonic() + 5
    while (count := threads_named(name)) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return count
