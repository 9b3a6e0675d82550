"""What the machine itself did during a benchmark: CPU stolen by the hypervisor, our CPU.

On a shared virtual machine a neighbour can take the CPUs away (steal time), which a
process's own CPU figures do not show. Every benchmark reports it beside its figures.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid or os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def steal_seconds() -> float:
    """CPU seconds the hypervisor gave to other guests so far, all cores (0 when unknown)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


class StealMeter:
    """Steal since it was made (or last reset), as a percentage of all the cores' time."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start counting again from now."""
        self._steal0 = steal_seconds()
        self._wall0 = time.monotonic()

    def percent(self) -> float:
        """Percent of the machine's CPU time stolen since the start."""
        wall = max(1e-9, time.monotonic() - self._wall0)
        return round(100 * (steal_seconds() - self._steal0) / wall / (os.cpu_count() or 1), 2)
