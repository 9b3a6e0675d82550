"""Baseline and music-statistics arithmetic on hand-made examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    CopyIndex,
    chord_tone_ratio,
    interval_histogram,
    overlap,
    pitch_class_histogram,
    scale_consistency,
)
from training.ngram import NgramModel, best_order
from training.tokenize import STEP_HOLD, STEP_REST, parse_chord


def _step(pitch: int) -> int:
    return 2 + pitch - 48


C, E, G, D = 60, 64, 67, 62
C_MAJOR = parse_chord("C")


def test_chord_tone_ratio_counts_notes_over_their_chord() -> None:
    bar = [_step(C), STEP_HOLD, _step(E), STEP_HOLD, _step(D), STEP_REST, _step(G), STEP_HOLD]
    bar += [STEP_REST] * 8
    assert chord_tone_ratio([bar], [[C_MAJOR] * 16]) == pytest.approx(3 / 4)
    assert chord_tone_ratio([bar], [[0] * 16]) == 0.0  # no chord: nothing counted


def test_scale_consistency_and_histograms() -> None:
    in_c = [_step(p) for p in (C, D, E, G)] + [STEP_REST] * 12
    out = [_step(p) for p in (C, 61, D, 63)] + [STEP_REST] * 12  # chromatic: no scale
    assert scale_consistency([in_c]) == 1.0
    assert scale_consistency([out]) < 1.0
    hist = pitch_class_histogram([in_c])
    assert hist.sum() == pytest.approx(1.0) and hist[0] == pytest.approx(0.25)
    intervals = interval_histogram([in_c])
    assert intervals[12 + 2] == pytest.approx(2 / 3)  # C→D, D→E up a tone; E→G a third
    assert overlap(hist, hist) == pytest.approx(1.0)
    assert overlap(hist, np.roll(hist, 1)) < 1.0


def test_copy_index_finds_the_longest_verbatim_run() -> None:
    training = [[(60, 2), (62, 2), (64, 4), (65, 2), (67, 2)], [(70, 1)]]
    index = CopyIndex(training)
    assert index.longest_copy([(1, 1), (62, 2), (64, 4), (65, 2), (99, 1)]) == 3
    assert index.longest_copy([(60, 2), (62, 2), (64, 4), (65, 2), (67, 2)]) == 5
    assert index.longest_copy([(62, 2), (64, 4)]) == 2  # shorter than the anchor
    assert index.longest_copy([(1, 1)]) == 0


def test_ngram_is_normalised_and_learns() -> None:
    sequences = [[0, 1, 2, 3, 1, 2, 3, 1, 2, 3]] * 5
    model = NgramModel(3, 5, start=0).fit(sequences)
    for i in range(1, 6):
        assert sum(model.prob(sequences[0], i, t) for t in range(5)) == pytest.approx(1.0)
    total, count = model.nll(sequences)
    assert total / count < math.log(5) / 2
    best, scores = best_order(sequences, sequences, 5, orders=(1, 2, 3), start=0)
    assert best.order > 1 and scores[best.order] == min(scores.values())
