"""The session's beat grid and its click, sample-accurate on the mix clock."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

CLICK_MS = 25.0


def _click(freq_hz: float, sample_rate: int, length: int) -> npt.NDArray[np.float32]:
    t = np.arange(length, dtype=np.float64) / sample_rate
    envelope = np.exp(-t * 180.0)
    attack = np.minimum(1.0, t * sample_rate / 24.0)  # 0.5 ms attack: no click-in-the-click
    return (0.5 * np.sin(2 * math.pi * freq_hz * t) * envelope * attack).astype(np.float32)


class Metronome:
    """Beat grid at ``tempo_bpm`` with ``beats_per_bar``; renders clicks into a tick buffer.

    Beat ``k`` starts at sample ``origin + k * period``; the grid is re-anchored on tempo
    changes so the beat count continues.
    """

    def __init__(self, tempo_bpm: float, beats_per_bar: int, sample_rate: int = 48000) -> None:
        self.sample_rate = sample_rate
        length = int(sample_rate * CLICK_MS / 1000)
        self._accent = _click(1760.0, sample_rate, length)
        self._plain = _click(1175.0, sample_rate, length)
        self._origin = 0
        self._first_beat = 0
        self.tempo_bpm = tempo_bpm
        self.beats_per_bar = beats_per_bar
        self._period = 60.0 * sample_rate / tempo_bpm

    def set_tempo(self, tempo_bpm: float, beats_per_bar: int, at_sample: int) -> None:
        """The beat in progress at ``at_sample`` ends on the old grid; the new one starts next."""
        next_beat = self.beat_at(at_sample) + 1
        self._origin = self.beat_start(next_beat)
        self._first_beat = next_beat
        self.tempo_bpm = tempo_bpm
        self.beats_per_bar = beats_per_bar
        self._period = 60.0 * self.sample_rate / tempo_bpm

    def beat_start(self, beat: int) -> int:
        """First sample of beat number ``beat``."""
        return self._origin + round((beat - self._first_beat) * self._period)

    def beat_at(self, sample: int) -> int:
        """Number of the beat in progress at ``sample`` (the grid's first beat is 0)."""
        return self._first_beat + math.floor((sample - self._origin) / self._period)

    def beat_in(self, start: int, length: int) -> int | None:
        """The number of a beat that starts in [start, start+length), or None."""
        beat = self.beat_at(start + length - 1)
        return beat if self.beat_start(beat) >= start else None

    def render(self, start: int, out: npt.NDArray[np.float32]) -> int | None:
        """Write clicks for samples [start, start+len(out)) into ``out``.

        Returns the number of a beat that starts inside this block, or None.
        """
        out.fill(0.0)
        n = out.shape[0]
        length = self._plain.shape[0]
        started: int | None = None
        beat = self.beat_at(start - length)
        while True:
            begin = self.beat_start(beat)
            if begin >= start + n:
                break
            if begin + length > start:
                click = self._accent if beat % self.beats_per_bar == 0 else self._plain
                lo = max(begin, start)
                hi = min(begin + length, start + n)
                out[lo - start : hi - start] += click[lo - begin : hi - begin]
                if begin >= start:
                    started = beat
            beat += 1
        return started
