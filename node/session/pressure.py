"""Is this host's CPU overloaded right now? Linux's pressure stall information says.

``/proc/pressure/cpu`` counts the time (``some total``, microseconds) during which at least
one runnable task waited for a CPU. A node that mixes in real time waits a little now and
then (a few per cent of the time); an overloaded machine (more busy processes than cores)
waits nearly all the time. The jitter buffers ask when they see a peak: peaks that came
while the host was overloaded end when the overload does, so they are let go of quickly
afterwards, while small peaks on a host that is not overloaded (a hypervisor's steal,
another machine's jitter) are a pattern worth holding (``node.session.jitter``).

Sampled at most every ``EVERY_S`` by whoever polls (each jitter buffer's adapt step), so
the cost is one small file read four times a second per process. Where the file is missing
(not Linux, or a kernel without PSI) ``available`` is false and nothing is ever "busy".
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path

PSI_CPU = Path("/proc/pressure/cpu")
EVERY_S = 0.25  # sample at most this often
SPAN_S = 1.0  # the share is over about the last second (a burst of work is not overload)
BUSY_SHARE = 0.5  # waiting for a CPU half the time: overloaded (a node mixing 32 on a
# 2-vCPU VM waits 16-21 % of the time; eight spinning processes make it 100 %)
STALE_S = 2.0  # a sample older than this says nothing about now


def _read_some_total(path: Path) -> float | None:
    """Seconds during which some task waited for a CPU, since boot (None: no PSI)."""
    try:
        with path.open("rb") as f:
            first = f.readline()
    except OSError:
        return None
    for field in first.split():
        if field.startswith(b"total="):
            return int(field[6:]) / 1e6
    return None


class HostPressure:
    """The share of recent time some task waited for a CPU, sampled on demand."""

    def __init__(self, path: Path = PSI_CPU) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._last_s: float | None = None
        self._samples: collections.deque[tuple[float, float]] = collections.deque()
        self.share = 0.0
        """Share of about the last ``SPAN_S`` during which some task waited for a CPU."""
        self.sampled_s = -1e9
        self.available = _read_some_total(path) is not None

    def poll(self, now_s: float) -> None:
        """Take a sample if the last one is ``EVERY_S`` old (monotonic ``now_s``)."""
        if not self.available or (self._last_s is not None and 0 <= now_s - self._last_s < EVERY_S):
            return
        with self._lock:  # the mix thread and the event loop may both poll
            if self._last_s is not None and now_s < self._last_s:
                self._forget()  # the caller's clock went backwards (another clock)
            if self._last_s is not None and now_s - self._last_s < EVERY_S:
                return
            total = _read_some_total(self.path)
            if total is None:
                self.available = False
                return
            samples = self._samples
            while len(samples) > 1 and now_s - samples[1][0] >= SPAN_S:
                samples.popleft()
            if samples and now_s > samples[0][0]:
                then_s, then_total = samples[0]
                self.share = min(1.0, max(0.0, (total - then_total) / (now_s - then_s)))
                self.sampled_s = now_s
            samples.append((now_s, total))
            self._last_s = now_s

    def _forget(self) -> None:
        self._samples.clear()
        self._last_s = None
        self.share = 0.0
        self.sampled_s = -1e9

    def busy(self, now_s: float) -> bool:
        """Whether the host is overloaded now (by a recent sample on the same clock).

        A sample taken "after" ``now_s`` came from another caller's clock and says nothing.
        """
        return 0 <= now_s - self.sampled_s < STALE_S and self.share >= BUSY_SHARE


host = HostPressure()
"""The process's view of its host (one per process: the host is shared by all)."""
