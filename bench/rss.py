"""The resident memory of a process (VmRSS in /proc/PID/status), read once or sampled in the background."""

from __future__ import annotations

import threading
from pathlib import Path

SAMPLE_EVERY_S = 0.05


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # the kernel writes kB
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line (has the process exited?)")


class PeakRss:
    """Samples a process's RSS every SAMPLE_EVERY_S from `start()` to `stop()`; `peak` is the most seen."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name=f"rss-{pid}", daemon=True)

    def start(self) -> "PeakRss":
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak

    def _sample(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
                self.samples += 1
            except (OSError, RuntimeError):  # the process is gone: nothing more to see
                return
            if self._stop.wait(SAMPLE_EVERY_S):
                return
