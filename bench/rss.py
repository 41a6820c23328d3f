"""A process's peak resident memory from /proc (Linux): VmHWM, the most of VmRSS so far, which the
kernel keeps exactly, so no sampling can miss a short peak."""

from __future__ import annotations

from pathlib import Path


def _status_bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # the kernel writes kB
    raise RuntimeError(f"/proc/{pid}/status has no {field} line")


def rss_bytes(pid: int) -> int:
    """The resident memory now."""
    return _status_bytes(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    """The most resident memory since the process started, or since `reset_peak_rss`."""
    return _status_bytes(pid, "VmHWM")


def reset_peak_rss(pid: int) -> bool:
    """Starts the peak over from the current RSS (Linux 4.0+); False where that is not allowed,
    and the peak then still counts from the process's start."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
