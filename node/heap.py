"""Keeping Python's cyclic garbage collector's full passes out of a live jam.

A full (generation 2) collection walks every object the collector tracks. After the node's
imports (numpy, scipy, numba, torch, aiortc, web3, libp2p, …) that is about 390 000 objects,
and one pass took 150–390 ms on the 2-core build machine. During it the thread that runs the
pass holds the GIL, so the event loop stops reading packets and the mix clock stops mixing: a
jam hears a dropout, and every inbound stream conceals frames that were only late. In a
24-person capacity run the collector made five such passes in about a minute.

So the long-lived heap is frozen (``gc.freeze``): objects alive once a process has loaded
everything move to a permanent generation that collections skip, and the passes during a jam
only walk what was made since — the sessions' and peers' own objects, a few milliseconds.

The freeze itself is one full pass, so it is only done when nobody can hear it: as the node
starts (before it accepts anyone), and then whenever the node becomes idle (nobody connected
anywhere) after something changed — participants came and went (frozen objects are never
collected, so what departed peers left behind is freed by thawing, collecting and freezing
again), or the models finished loading in the background.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def freeze() -> float:
    """Collect once, then freeze every object still alive; returns the seconds it took."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started


class HeapKeeper:
    """Freezes the heap at start, and again at idle moments after changes (module text)."""

    def __init__(self) -> None:
        self._stale = False
        self.freezes = 0
        """How many times this keeper has frozen the heap (at start, then at idle moments)."""

    def start(self) -> None:
        """Freeze now (the node is not accepting anyone yet)."""
        took = freeze()
        self.freezes += 1
        log.info(
            "heap frozen: %d objects out of the collector's full passes (%.0f ms)",
            gc.get_freeze_count(),
            took * 1000,
        )

    def mark(self) -> None:
        """Much was just loaded (the models): freeze again at the next idle moment."""
        self._stale = True

    def observe(self, connected: int) -> None:
        """Called periodically with the number of participants connected anywhere."""
        if connected:
            self._stale = True
        elif self._stale:
            self._stale = False
            took = freeze()
            self.freezes += 1
            log.info("idle: heap collected and frozen again (%.0f ms)", took * 1000)
