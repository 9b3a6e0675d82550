"""The built-in synthesizer: notes → 48 kHz mono float32, sample-exact onsets.

A few instruments made of additive partials with per-partial decay, plus a Karplus-Strong
pluck. Each note starts with a 1 ms attack at exactly its onset sample, so what the bandmate
schedules on the beat grid is what listeners hear on it. Rendered notes are cached by
(instrument, pitch, length), so a bar costs a few additions once the cache is warm.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from node.errors import InputError

F32 = npt.NDArray[np.float32]
ATTACK_S = 0.001
RELEASE_S = 0.08


@dataclass(frozen=True)
class Instrument:
    """An additive voice: partial amplitudes, their decay rates, an octave offset."""

    name: str
    partials: tuple[float, ...]
    decay_per_s: tuple[float, ...]
    octave: int = 0
    sustain: bool = False
    gain: float = 0.3


INSTRUMENTS: dict[str, Instrument] = {
    "piano": Instrument(
        "piano", (1.0, 0.45, 0.25, 0.12, 0.08, 0.04), (2.2, 3.0, 4.0, 5.5, 7.0, 9.0)
    ),
    "organ": Instrument(
        "organ", (1.0, 0.6, 0.0, 0.35, 0.0, 0.2), (0.0,) * 6, sustain=True, gain=0.22
    ),
    "vibes": Instrument("vibes", (1.0, 0.0, 0.0, 0.3), (1.2, 1.0, 1.0, 2.5), gain=0.35),
    "bass": Instrument("bass", (1.0, 0.5, 0.3, 0.1), (1.5, 2.5, 3.5, 5.0), octave=-2, gain=0.4),
    "pluck": Instrument("pluck", (), (), gain=0.35),
}


def midi_hz(pitch: int) -> float:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
    return float(440.0 * 2.0 ** ((pitch - 69) / 12.0))


def _envelope(length: int, sample_rate: int, sustain_len: int) -> npt.NDArray[np.float64]:
    t = np.arange(length)
    attack = np.minimum(1.0, t / max(1, int(ATTACK_S * sample_rate)))
    release = np.ones(length)
    tail = length - sustain_len
    if tail > 0:
        release[sustain_len:] = np.linspace(1.0, 0.0, tail)
    return attack * release


@functools.lru_cache(maxsize=512)
def _note(instrument: str, pitch: int, held: int, sample_rate: int) -> F32:
    voice = INSTRUMENTS[instrument]
    pitch = max(12, min(120, pitch + 12 * voice.octave))
    freq = midi_hz(pitch)
    release = int(RELEASE_S * sample_rate)
    length = held + release
    t = np.arange(length) / sample_rate
    if instrument == "pluck":
        # Karplus-Strong: a noise burst in a delay line with an averaging filter.
        period = max(2, round(sample_rate / freq))
        rng = np.random.default_rng(pitch)
        line = rng.uniform(-1.0, 1.0, period)
        out = np.empty(length)
        for start in range(0, length, period):
            chunk = line[: min(period, length - start)]
            out[start : start + chunk.shape[0]] = chunk
            line = 0.996 * 0.5 * (line + np.roll(line, -1))
        signal = out
    else:
        signal = np.zeros(length)
        for k, (amp, decay) in enumerate(zip(voice.partials, voice.decay_per_s, strict=True)):
            if amp == 0.0 or freq * (k + 1) >= sample_rate / 2:
                continue
            signal += amp * np.exp(-decay * t) * np.sin(2 * math.pi * freq * (k + 1) * t)
    signal *= voice.gain * _envelope(length, sample_rate, held)
    return signal.astype(np.float32)


def check_instrument(name: str) -> str:
    """``name`` if it is a known instrument, else a clear error."""
    if name not in INSTRUMENTS:
        raise InputError(f"instrument must be one of {', '.join(INSTRUMENTS)}")
    return name


def render(
    notes: Iterable[tuple[int, int, int]],
    instrument: str,
    length: int,
    sample_rate: int = 48000,
    velocity: float = 1.0,
) -> F32:
    """Mono audio for (onset sample, held samples, MIDI pitch) notes; tails run past ``length``.

    The buffer is ``length`` plus the release, so a bar's last note rings into the next bar.
    """
    check_instrument(instrument)
    out = np.zeros(length + int(RELEASE_S * sample_rate) + 1, dtype=np.float32)
    for onset, held, pitch in notes:
        if onset < 0 or onset >= length or held <= 0:
            continue
        note = _note(instrument, int(pitch), int(held), sample_rate)
        end = min(out.shape[0], onset + note.shape[0])
        out[onset:end] += note[: end - onset] * velocity
    return out
