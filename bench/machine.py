"""What the machine itself did during a benchmark: CPU stolen by the hypervisor, our CPU.

On a shared virtual machine a neighbour can take the CPUs away (steal time), which a
process's own CPU figures do not show. Every benchmark reports it beside its figures, and
``StealSimulator`` takes a set share of every core away in short spells, to measure through
steal on purpose rather than wait for a quiet (or a noisy) hour.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


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


def bench_node_config(data_dir: str, **media: Any) -> Any:
    """A node for a latency benchmark: a free port, ``data_dir``, no chain, AI or p2p (they
    only add start-up time), and ``media`` settings on top."""
    from node.config import load_config

    values: dict[str, Any] = {
        "http": {"port": 0},
        "data_dir": data_dir,
        "chain": {"mode": "off"},
        "ai": {"enabled": False},
        "p2p": {"enabled": False},
        "session": {"challenges_per_minute": 1_000_000},  # every client joins from 127.0.0.1
    }
    if media:
        values["media"] = media
    return load_config(None, values, environ={})


def _thief(core: int, duty: float, seed: int, stop: Any) -> None:
    """Take one core away in short random spells, as a hypervisor's steal does: a real-time
    (SCHED_FIFO) process pinned to ``core`` spins for 2-20 ms every so often, ``duty`` of
    the time on average, and nothing else runs on that core meanwhile."""
    import random

    rng = random.Random(seed)
    try:
        os.sched_setaffinity(0, {core})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):  # not root, or not Linux: a normal-priority thief
        pass
    while not stop.is_set():
        spell = rng.uniform(0.002, 0.020)
        gap = spell * (1 - duty) / duty * rng.uniform(0.5, 1.5)
        end = time.monotonic() + spell
        while time.monotonic() < end:
            pass
        stop.wait(gap)


class StealSimulator:
    """``percent`` of every core taken in short spells while it runs (``with`` block).

    Steal cannot be ordered from inside a guest, and a quiet hour has none: this stands in
    for it so a capacity figure can be measured *with* the steal a shared VM sees."""

    def __init__(self, percent: float) -> None:
        self.percent = percent
        self._procs: list[Any] = []
        self._stop: Any = None

    def __enter__(self) -> StealSimulator:
        if self.percent <= 0:
            return self
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        for core in range(os.cpu_count() or 1):
            proc = ctx.Process(
                target=_thief, args=(core, self.percent / 100, core, self._stop), daemon=True
            )
            proc.start()
            self._procs.append(proc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._stop.set()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        self._procs.clear()
