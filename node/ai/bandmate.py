"""The bandmate: an AI participant that improvises bars on the session's beat grid.

Two halves, like every real-time part of the node:

- ``BarPlayer`` lives in the mixer (it is the bandmate's slot source). On the mix thread it
  adds scheduled bar buffers into the slot's frame at their exact sample positions. Bars
  reach it only through ``SessionMixer.post``, so it needs no lock.
- ``Bandmate`` decides, on the event loop, which bars are due (always at least one whole bar
  ahead of the one playing), and has them generated and synthesised in the model thread.

A bar's notes are placed by the metronome's own grid (``Metronome.beat_start``), so an
onset lands on the sample where the click for that beat (or its sixteenth) would start.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from node.ai import synth
from node.errors import InputError
from node.inputs import number
from training.tokenize import BAR_STEPS, bar_notes

if TYPE_CHECKING:
    from node.ai.music import Improviser
    from node.session.metronome import Metronome

F32 = npt.NDArray[np.float32]
AHEAD_BARS = 2
"""Bars generated beyond the one playing (≥ 1: a slow generation never leaves a gap)."""
ARTICULATION = 0.9
MAX_QUEUED_BARS = 8


class BarPlayer:
    """Mixes scheduled bars into a slot's frames (mix thread only)."""

    def __init__(self) -> None:
        self._bars: list[tuple[int, int, F32]] = []  # (start sample, bar number, audio)
        self.scheduled = 0
        self.dropped = 0

    def add(self, start: int, bar: int, audio: F32) -> None:
        """Schedule ``audio`` to start at sample ``start`` (bounded: the oldest go first)."""
        if any(b == bar for _, b, _ in self._bars):
            return  # already there (a retry after a tempo change raced the first one)
        bisect.insort(self._bars, (start, bar, audio), key=lambda item: item[0])
        self.scheduled += 1
        while len(self._bars) > MAX_QUEUED_BARS:
            self._bars.pop(0)
            self.dropped += 1

    def drop_from(self, sample: int) -> None:
        """Forget bars that start at or after ``sample`` (the grid changed under them)."""
        kept = [item for item in self._bars if item[0] < sample]
        self.dropped += len(self._bars) - len(kept)
        self._bars = kept

    def fill(self, start: int, out: F32) -> None:
        """Write samples [start, start + len(out)) of every scheduled bar into ``out``."""
        out.fill(0.0)
        n = out.shape[0]
        finished = 0
        for begin, _, audio in self._bars:
            if begin >= start + n:
                break
            end = begin + audio.shape[0]
            if end <= start:
                finished += 1
                continue
            lo, hi = max(begin, start), min(end, start + n)
            out[lo - start : hi - start] += audio[lo - begin : hi - begin]
        if finished:
            self._bars = [item for item in self._bars if item[0] + item[2].shape[0] > start]


@dataclass(frozen=True)
class Grid:
    """A snapshot of the metronome's grid (read on the loop, used in the model thread)."""

    origin: int
    first_beat: int
    period: float
    beats_per_bar: int
    beat_unit: int

    @classmethod
    def of(cls, metronome: Metronome, beat_unit: int) -> Grid:
        """The metronome's current grid."""
        return cls(
            metronome._origin,
            metronome._first_beat,
            metronome._period,
            metronome.beats_per_bar,
            beat_unit,
        )

    @property
    def steps_per_beat(self) -> int:
        """Sixteenths in one beat (4 in x/4, 2 in x/8)."""
        return max(1, 16 // self.beat_unit)

    @property
    def steps_per_bar(self) -> int:
        """Sixteenths in one bar."""
        return self.beats_per_bar * self.steps_per_beat

    def beat_start(self, beat: int) -> int:
        """First sample of beat ``beat`` (the metronome's own formula)."""
        return self.origin + round((beat - self.first_beat) * self.period)

    def bar_at(self, sample: int) -> int:
        """The bar in progress at ``sample``."""
        beat = self.first_beat + int(np.floor((sample - self.origin) / self.period))
        return beat // self.beats_per_bar

    def step_sample(self, bar: int, step: int) -> int:
        """Sample where sixteenth ``step`` of ``bar`` starts."""
        spb = self.steps_per_beat
        beat = bar * self.beats_per_bar + step // spb
        return self.beat_start(beat) + round((step % spb) * self.period / spb)


@dataclass
class BandmateSettings:
    """What the owner sets on the page."""

    instrument: str = "piano"
    density: float = 0.4
    gain: float = 1.0

    def update(self, body: dict[str, object]) -> None:
        """Apply validated fields from a request body."""
        if "instrument" in body:
            value = body["instrument"]
            if not isinstance(value, str):
                raise InputError("instrument must be a string")
            self.instrument = synth.check_instrument(value)
        for name, lo, hi in (("density", 0.0, 1.0), ("gain", 0.0, 2.0)):
            if name in body:
                setattr(self, name, number(body[name], name, lo, hi))


@dataclass
class RenderedBar:
    """One bar ready to play: where it starts, its audio, and its notes (for tests/UI)."""

    bar: int
    start: int
    audio: F32
    onsets: list[int]
    steps: list[int]
    chord: int


@dataclass
class Bandmate:
    """Schedules improvised bars for one session (loop side; generation is blocking)."""

    improviser: Improviser
    settings: BandmateSettings = field(default_factory=BandmateSettings)
    chords: list[int] = field(default_factory=list)
    key: str = "C"
    seed: int = 0
    next_bar: int | None = None
    previous: list[int] = field(default_factory=lambda: [0] * BAR_STEPS)
    generated: int = 0

    def due(self, grid: Grid, now_sample: int) -> list[int]:
        """Bars to generate now: up to AHEAD_BARS beyond the one playing at ``now_sample``."""
        playing = grid.bar_at(now_sample)
        if self.next_bar is None or self.next_bar <= playing:
            self.next_bar = playing + 1  # never start a bar that is already under way
        return list(range(self.next_bar, playing + AHEAD_BARS + 1))

    def chord_for(self, bar: int) -> int:
        """The chord label (absolute) the progression gives bar ``bar``; tonic if none set."""
        if self.chords:
            return self.chords[bar % len(self.chords)]
        from training.tokenize import chord_id, key_tonic

        tonic, minor = key_tonic(self.key)
        return chord_id(tonic, "min" if minor else "maj")

    def render(self, grid: Grid, bar: int, sample_rate: int) -> RenderedBar:
        """Generate and synthesise ``bar`` on ``grid`` (blocking: the model thread)."""
        from node.ai.music import key_shift
        from training.tokenize import transpose_chord

        shift = key_shift(self.key)
        chord = self.chord_for(bar)
        steps = self.improviser.bar(
            transpose_chord(chord, shift),
            self.previous,
            self.settings.density,
            self.seed + bar,
        )
        self.previous = steps
        n_steps = min(grid.steps_per_bar, BAR_STEPS)
        start = grid.step_sample(bar, 0)
        length = grid.step_sample(bar + 1, 0) - start
        notes: list[tuple[int, int, int]] = []
        onsets: list[int] = []
        for note in bar_notes(steps[:n_steps]):
            if note.pitch is None:
                continue
            onset = grid.step_sample(bar, note.onset) - start
            end = grid.step_sample(bar, note.onset + note.duration) - start
            notes.append((onset, max(1, int((end - onset) * ARTICULATION)), note.pitch - shift))
            onsets.append(start + onset)
        audio = synth.render(notes, self.settings.instrument, length, sample_rate)
        audio *= self.settings.gain
        self.generated += 1
        return RenderedBar(bar, start, audio, onsets, steps, chord)


def schedule(
    post: Callable[[Callable[[], None]], None],
    player: BarPlayer,
    bar: RenderedBar,
    grid_now: Callable[[], Grid],
    grid: Grid,
) -> bool:
    """Hand a rendered bar to the mix thread, unless the grid moved while it was made."""
    if grid_now() != grid:
        return False
    post(lambda: player.add(bar.start, bar.bar, bar.audio))
    return True
