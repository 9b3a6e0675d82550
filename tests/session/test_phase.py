"""The mix clock aims its tick phase just after the frames it waits for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.session.phase import alignment_shift, best_phase, phase_shift, total_wait

PERIOD = 0.020


def test_one_stream_is_mixed_right_after_it_is_due() -> None:
    assert best_phase([0.013], PERIOD) == 0.013
    assert best_phase([], PERIOD) is None


@given(
    st.lists(st.floats(0, PERIOD, exclude_max=True), min_size=1, max_size=32),
    st.floats(0, PERIOD, exclude_max=True),
)
def test_best_phase_is_never_worse_than_any_other(phases: list[float], other: float) -> None:
    best = best_phase(phases, PERIOD)
    assert best is not None
    assert total_wait(best, phases, PERIOD) <= total_wait(other, phases, PERIOD) + 1e-12


@pytest.mark.parametrize(
    ("current", "target", "expected"),
    [
        (0.001, 0.0012, -0.0198),
        (0.001, 0.0005, -0.0005),
        (0.019, 0.001, -0.018),
        (0.010, 0.010, 0.0),
    ],
)
def test_the_clock_only_moves_earlier(current: float, target: float, expected: float) -> None:
    shift = phase_shift(current, target, PERIOD)
    assert shift == pytest.approx(expected, abs=1e-12)
    assert (current + shift - target) % PERIOD == pytest.approx(0.0, abs=1e-12) or (
        (current + shift - target) % PERIOD == pytest.approx(PERIOD, abs=1e-12)
    )


def test_alignment_tolerates_a_tick_just_before_a_due_time() -> None:
    # The tick is 0.3 ms before the frame is due: the buffer plays it anyway, so no move.
    assert alignment_shift(100.0123, [0.0126], PERIOD) == 0.0
    # The tick is 9 ms after: move earlier to 1 ms after the due time.
    assert alignment_shift(100.0216, [0.0126], PERIOD) == pytest.approx(-0.008, abs=1e-6)
