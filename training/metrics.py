"""Objective statistics of generated music against real music (bars of 16 steps).

- chord-tone ratio: the share of notes whose pitch class belongs to the chord under them;
- scale consistency: the share of notes in the best-fitting major or minor scale, per bar;
- pitch-class and interval histograms, compared by their overlapping area (the sum of the
  bin-wise minimum of two normalised histograms: 1 is identical, 0 disjoint; MGEval uses the
  same measure on its feature distributions);
- memorisation: the longest run of consecutive notes copied verbatim from the training set.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from training.tokenize import bar_notes, chord_pcs

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
SCALES = [frozenset((root + s) % 12 for s in mode) for root in range(12) for mode in (MAJOR, MINOR)]
INTERVAL_RANGE = 12  # intervals beyond an octave share the outermost bins


def chord_tone_ratio(bars: Iterable[Sequence[int]], chords: Iterable[Sequence[int]]) -> float:
    """Share of notes (onsets over a chord) that are chord tones."""
    hits = total = 0
    for steps, chord_row in zip(bars, chords, strict=True):
        for note in bar_notes(steps):
            label = chord_row[note.onset]
            if label == 0 or note.pitch is None:
                continue
            total += 1
            hits += (note.pitch % 12) in chord_pcs(label)
    return hits / total if total else 0.0


def scale_consistency(bars: Iterable[Sequence[int]]) -> float:
    """Mean over bars with notes of the best scale's share of notes."""
    values = []
    for steps in bars:
        pcs = [n.pitch % 12 for n in bar_notes(steps) if n.pitch is not None]
        if pcs:
            values.append(max(sum(pc in scale for pc in pcs) for scale in SCALES) / len(pcs))
    return float(np.mean(values)) if values else 0.0


def pitch_class_histogram(bars: Iterable[Sequence[int]]) -> npt.NDArray[np.float64]:
    """Normalised histogram of note pitch classes."""
    hist = np.zeros(12)
    for steps in bars:
        for note in bar_notes(steps):
            if note.pitch is not None:
                hist[note.pitch % 12] += 1
    return hist / hist.sum() if hist.sum() else hist


def interval_histogram(bars: Iterable[Sequence[int]]) -> npt.NDArray[np.float64]:
    """Normalised histogram of melodic intervals between successive notes within a bar."""
    hist = np.zeros(2 * INTERVAL_RANGE + 1)
    for steps in bars:
        pitches = [n.pitch for n in bar_notes(steps) if n.pitch is not None]
        for a, b in itertools.pairwise(pitches):
            hist[int(np.clip(b - a, -INTERVAL_RANGE, INTERVAL_RANGE)) + INTERVAL_RANGE] += 1
    return hist / hist.sum() if hist.sum() else hist


def overlap(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """Overlapping area of two normalised histograms."""
    return float(np.minimum(p, q).sum())


def note_sequence(bars: Iterable[Sequence[int]]) -> list[tuple[int | None, int]]:
    """(pitch, duration) of every note of consecutive bars."""
    out: list[tuple[int | None, int]] = []
    for steps in bars:
        out.extend((n.pitch, n.duration) for n in bar_notes(steps))
    return out


class CopyIndex:
    """Answers: what is the longest run of notes in a sequence that occurs in the training set?

    Every training position is indexed by the ``anchor`` notes that start there; a query
    extends each anchored match as far as it goes (memory grows with the corpus, not with
    the run lengths asked about).
    """

    def __init__(self, training: Iterable[Sequence[Any]], anchor: int = 3) -> None:
        self.anchor = anchor
        self._seqs = [list(seq) for seq in training]
        self._index: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
        self._singles: set[Any] = set()
        for s, seq in enumerate(self._seqs):
            self._singles.update(seq)
            for i in range(len(seq) - anchor + 1):
                self._index.setdefault(tuple(seq[i : i + anchor]), []).append((s, i))

    def longest_copy(self, seq: Sequence[Any]) -> int:
        """Length of the longest run of ``seq`` found verbatim in training."""
        best = 1 if any(item in self._singles for item in seq) else 0
        for i in range(len(seq) - self.anchor + 1):
            for s, j in self._index.get(tuple(seq[i : i + self.anchor]), ()):
                other = self._seqs[s]
                n = self.anchor
                while i + n < len(seq) and j + n < len(other) and seq[i + n] == other[j + n]:
                    n += 1
                best = max(best, n)
        if best < self.anchor:  # shorter runs: check directly
            for n in range(self.anchor - 1, best, -1):
                grams = {tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)}
                if any(
                    tuple(other[j : j + n]) in grams
                    for other in self._seqs
                    for j in range(len(other) - n + 1)
                ):
                    return n
        return best


def bar_statistics(
    bars: Sequence[Sequence[int]],
    chords: Sequence[Sequence[int]],
    reference: Sequence[Sequence[int]],
) -> dict[str, float]:
    """Every statistic of ``bars`` over ``chords``, histograms compared with ``reference``."""
    return {
        "chord_tone_ratio": round(chord_tone_ratio(bars, chords), 4),
        "scale_consistency": round(scale_consistency(bars), 4),
        "pc_overlap": round(
            overlap(pitch_class_histogram(bars), pitch_class_histogram(reference)), 4
        ),
        "interval_overlap": round(
            overlap(interval_histogram(bars), interval_histogram(reference)), 4
        ),
        "notes_per_bar": round(
            float(np.mean([len(bar_notes(b)) for b in bars])) if len(bars) else 0.0, 3
        ),
    }
