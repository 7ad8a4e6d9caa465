"""What the machine's CPUs and the keep's disk were busy with during a timed run.

The writer figures are ratios of four processes against one on a machine with few cores
and one virtual disk. Whether four writers could have gone faster is a question of which
of the two was saturated, so each writer run records both (Linux; elsewhere nothing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Usage", "usage"]

# /proc/stat cpu fields: user nice system idle iowait irq softirq steal ...
_IDLE, _IOWAIT, _STEAL = 3, 4, 7


@dataclass(frozen=True, slots=True)
class Usage:
    """Cumulative counters at one moment; subtract two to get a run's usage."""

    cpu_busy_s: float
    """Seconds any CPU spent running something (idle, I/O wait and steal excluded)."""
    cpu_iowait_s: float
    """Seconds CPUs sat idle while some task waited for I/O."""
    disk_busy_s: float
    """Seconds the keep's block device had at least one request in flight."""

    def __sub__(self, earlier: Usage) -> Usage:
        return Usage(
            self.cpu_busy_s - earlier.cpu_busy_s,
            self.cpu_iowait_s - earlier.cpu_iowait_s,
            self.disk_busy_s - earlier.disk_busy_s,
        )


def usage(path: Path) -> Usage | None:
    """The counters now, for the disk holding ``path``; None where Linux's are absent."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
        device = os.stat(path).st_dev
        with open(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat") as f:
            io_ticks_ms = int(f.read().split()[9])
    except (OSError, ValueError, IndexError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = sum(ticks) - ticks[_IDLE] - ticks[_IOWAIT] - ticks[_STEAL]
    return Usage(busy / hz, ticks[_IOWAIT] / hz, io_ticks_ms / 1000)
