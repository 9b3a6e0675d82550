"""Does a new work copy a registered one? Melody n-grams and the longest shared span.

A melody is compared by its sequence of pitch intervals (semitones between successive notes,
repeated notes merged), so a copy is found in any key and whatever its rhythm. Every
registered work's intervals are indexed by n-grams of ``GRAM`` intervals; a query looks its
own n-grams up and follows each (work, offset) diagonal: a run of consecutive shared n-grams
is a shared span of notes. The answer is the registered works with the longest shared spans,
each with where the span starts in both melodies.

The thresholds come from the bundled corpus (``bench/markets.py --threshold 300``): among the
179,700 pairs of 600 different folk tunes (O'Neill's and Essen), the longest shared span is 0
notes at the median, 9 at p99 and 12 at p99.9 (``UNRELATED_P999_NOTES``): shared formulas.
26 pairs (0.014 %) share ``FLAG_SPAN_NOTES`` = 16 or more, 12 of them settings of one tune
under one title and the rest tune-family relatives: such a registration is *flagged* for the
registrant to name the parent or confirm. All 8 pairs sharing ``GATE_SPAN_NOTES`` = 24 or more
are the same tune: without a parent named, the node refuses to register such a work.

Melodies come from a work's MIDI where there is one (compositions, the bandmate's part), and
otherwise from its stems transcribed (``transcribe``: a monophonic pitch tracker, one note per
stable pitch; enough for a lead line or a bass, not for chords).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from random import Random

import numpy as np
import numpy.typing as npt

GRAM = 5
"""Intervals per n-gram: 6 notes."""
FLAG_SPAN_NOTES = 16
"""A shared span this long (in notes) or longer is flagged as a likely copy."""
GATE_SPAN_NOTES = 24
"""A shared span this long or longer is a copy: registering it needs the parent named."""
UNRELATED_P999_NOTES = 12
"""99.9th percentile of the longest shared span between different corpus tunes."""
MAX_INTERVAL = 24


@dataclass(frozen=True)
class Match:
    """A registered work sharing a span with the query."""

    work: int
    span_notes: int
    query_start: int
    work_start: int

    @property
    def flagged(self) -> bool:
        """Whether the span is long enough to be a likely copy."""
        return self.span_notes >= FLAG_SPAN_NOTES

    @property
    def gated(self) -> bool:
        """Whether the span is long enough that registering needs the parent named."""
        return self.span_notes >= GATE_SPAN_NOTES


def intervals(pitches: Iterable[int]) -> list[int]:
    """Successive intervals in semitones, repeated notes merged, leaps clamped to two octaves."""
    out: list[int] = []
    previous: int | None = None
    for pitch in pitches:
        if previous is not None and pitch != previous:
            out.append(max(-MAX_INTERVAL, min(MAX_INTERVAL, int(pitch) - previous)))
        previous = int(pitch)
    return out


def _grams(steps: Sequence[int]) -> list[tuple[int, ...]]:
    return [tuple(steps[i : i + GRAM]) for i in range(len(steps) - GRAM + 1)]


class MelodyIndex:
    """Registered works' melodies, indexed by interval n-grams."""

    def __init__(self) -> None:
        self._postings: dict[tuple[int, ...], list[tuple[int, int]]] = defaultdict(list)
        self._works: set[int] = set()
        self._next: dict[int, int] = {}
        """Each work's next free position: its melodies (stems) lie apart, so no span joins two."""

    def __len__(self) -> int:
        return len(self._works)

    def __contains__(self, work: int) -> bool:
        return work in self._works

    def add(self, work: int, pitches: Iterable[int]) -> None:
        """Index a work's melody (MIDI pitches in order); a work is indexed once."""
        if work not in self._works:
            self.add_part(work, pitches)

    def add_part(self, work: int, pitches: Iterable[int]) -> None:
        """Index one more melody of a work (another stem of it)."""
        self._works.add(work)
        start = self._next.get(work, 0)
        grams = _grams(intervals(pitches))
        for position, gram in enumerate(grams, start):
            self._postings[gram].append((work, position))
        self._next[work] = start + len(grams) + GRAM + 1

    def query(
        self, pitches: Iterable[int], exclude: Iterable[int] = (), limit: int = 5
    ) -> list[Match]:
        """The works sharing the longest spans with this melody, longest first."""
        skip = set(exclude)
        runs: dict[tuple[int, int], tuple[int, int]] = {}  # (work, diagonal) → (last q, run)
        best: dict[int, Match] = {}
        for q, gram in enumerate(_grams(intervals(pitches))):
            for work, position in self._postings.get(gram, ()):
                if work in skip:
                    continue
                key = (work, position - q)
                last, run = runs.get(key, (-2, 0))
                run = run + 1 if last == q - 1 else 1
                runs[key] = (q, run)
                span = run + GRAM  # run n-grams cover run + GRAM - 1 intervals: run + GRAM notes
                if work not in best or span > best[work].span_notes:
                    best[work] = Match(work, span, q - run + 1, position - run + 1)
        return sorted(best.values(), key=lambda m: (-m.span_notes, m.work))[:limit]


def transcribe(
    samples: npt.NDArray[np.float32], sample_rate: int = 48000, min_note_s: float = 0.06
) -> list[int]:
    """A mono recording's melody as MIDI pitches: the pitch of each stable voiced stretch.

    Frames of 2048 samples every 10 ms; each frame's period is the first strong peak of its
    normalised autocorrelation (between 60 Hz and 1.5 kHz) where the frame is loud enough
    and periodic enough; runs of one rounded pitch at least ``min_note_s`` long become notes.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    size, hop = 2048, max(1, sample_rate // 100)
    if x.shape[0] < size:
        return []
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        return []
    floor = peak * 0.05
    lo_lag, hi_lag = int(sample_rate / 1500), int(sample_rate / 60)
    frames: list[int | None] = []
    window = np.hanning(size)
    for start in range(0, x.shape[0] - size, hop):
        frame = x[start : start + size]
        if np.sqrt(np.mean(frame * frame)) < floor:
            frames.append(None)
            continue
        w = (frame - frame.mean()) * window
        spectrum = np.fft.rfft(w, 2 * size)
        ac = np.fft.irfft(spectrum * np.conj(spectrum))[: hi_lag + 2]
        if ac[0] <= 0:
            frames.append(None)
            continue
        ac = ac / ac[0]
        segment = ac[lo_lag : hi_lag + 1]
        strongest = float(segment.max())
        if strongest < 0.5:
            frames.append(None)
            continue
        # The first peak within 90 % of the strongest: the fundamental, not a multiple.
        candidates = np.nonzero(segment >= 0.9 * strongest)[0]
        lag = lo_lag + int(candidates[0])
        while lag + 1 <= hi_lag and ac[lag + 1] > ac[lag]:
            lag += 1
        if 1 <= lag < ac.shape[0] - 1:  # parabolic refinement
            a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
            denom = a - 2 * b + c
            shift = 0.5 * (a - c) / denom if denom != 0 else 0.0
        else:
            shift = 0.0
        hz = sample_rate / (lag + shift)
        frames.append(round(69 + 12 * float(np.log2(hz / 440.0))))
    min_frames = max(1, round(min_note_s * sample_rate / hop))
    notes: list[int] = []
    run_pitch, run_len = None, 0
    for pitch in [*frames, None]:
        if pitch is not None and pitch == run_pitch:
            run_len += 1
            continue
        if run_pitch is not None and run_len >= min_frames:
            notes.append(run_pitch)
        run_pitch, run_len = pitch, 1
    return notes


def synthetic_melodies(count: int, rng: Random, length: int = 64) -> list[list[int]]:
    """Random-walk melodies in a scale (for load figures: realistic n-gram statistics, with
    the steps and small leaps tunes are made of)."""
    scale = (0, 2, 4, 5, 7, 9, 11)
    steps = (-3, -2, -1, -1, 1, 1, 2, 3, 0, 4, -4)
    out = []
    for _ in range(count):
        degree = rng.randrange(7, 14)
        melody = []
        for _ in range(length):
            degree = max(0, min(21, degree + rng.choice(steps)))
            melody.append(48 + 12 * (degree // 7) + scale[degree % 7])
        out.append(melody)
    return out
