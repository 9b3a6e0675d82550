"""Where to put a frame clock's ticks so frames wait as little as possible for them.

The node's mix clock and a native client's playout clock each run on a fixed grid, while
frames become due (arrival plus jitter-buffer delay) at their sender's phase. Each second
the clock may move its grid so it ticks just after frames are due; it only ever moves
earlier, which downstream jitter buffers see as a packet arriving early (harmless) rather
than late (which would make them grow).
"""

from __future__ import annotations

from node.session.jitter import early_s

ALIGN_EVERY_S = 1.0  # re-aim the clock's phase once a second
ALIGN_AFTER_DUE_S = 0.001  # tick this long after the chosen frames are due
ALIGN_GAIN_FRACTION = 0.1  # move only when each stream would wait this share of a period less
ALIGN_MIN_GAP_S = 30.0  # after a move, the node's clock stays put for 30 s ...
ALIGN_BIG_GAIN_FRACTION = 0.25  # ... unless streams would wait a quarter of a period less
ALIGN_BIG_GAP_S = 2.0  # ... then 2 s is enough (an overload or a restart moved the phases)


def ticks_per(seconds: float, period_s: float) -> int:
    """Whole ticks of ``period_s`` in ``seconds`` (at least one)."""
    return max(1, round(seconds / period_s))


def total_wait(tick_phase: float, due_phases: list[float], period_s: float) -> float:
    """Summed time frames due at ``due_phases`` wait for a tick at ``tick_phase``."""
    return sum((tick_phase - phase) % period_s for phase in due_phases)


def best_phase(due_phases: list[float], period_s: float) -> float | None:
    """The tick phase (mod ``period_s``) that minimises the mean wait of frames due at
    ``due_phases``: right after one of them, the one that leaves the least total wait."""
    if not due_phases:
        return None
    return min(due_phases, key=lambda c: total_wait(c, due_phases, period_s))


def phase_shift(current_s: float, target_s: float, period_s: float) -> float:
    """The shift (never positive) that moves phase ``current_s`` to ``target_s``.

    The clock only ever moves earlier: a listener then gets one packet sooner than the
    previous one, which its jitter buffer takes as good news; moving later would look like
    a late packet and make every listener's buffer grow."""
    return -((current_s - target_s) % period_s)


def alignment_shift(next_tick_s: float, due_phases: list[float], period_s: float) -> float:
    """How far (≤ 0) to move the next tick so frames due at ``due_phases`` wait least."""
    return alignment(next_tick_s, due_phases, period_s)[0]


def alignment(next_tick_s: float, due_phases: list[float], period_s: float) -> tuple[float, float]:
    """``(shift, gain)``: how far (≤ 0) to move the next tick so frames due at ``due_phases``
    wait least, and how much less each would wait on average (0 when not worth a move)."""
    target = best_phase(due_phases, period_s)
    if target is None:
        return 0.0, 0.0
    target = (target + min(ALIGN_AFTER_DUE_S, 0.2 * period_s)) % period_s
    current = next_tick_s % period_s
    # A jitter buffer plays a frame that is due within early_s() of the tick, so a tick just
    # before a due time costs no wait: judge the gain with that tolerance.
    tolerance = early_s(period_s)
    early = [(phase - tolerance) % period_s for phase in due_phases]
    gain = total_wait(current, early, period_s) - total_wait(target, early, period_s)
    if gain < ALIGN_GAIN_FRACTION * period_s * len(due_phases):
        return 0.0, 0.0
    return phase_shift(current, target, period_s), gain / len(due_phases)
