"""Composing and improvising with the loaded models, in the session's key.

The models work in C major / A minor; these wrappers move seeds and chords there and the
results back. Both are blocking (torch): the node calls them from its model thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from node.errors import InputError
from training.tokenize import (
    BAR_STEPS,
    BOS,
    EOS,
    Note,
    bar_notes,
    decode,
    encode,
    key_tonic,
    parse_chord,
    shift_to_c,
    transpose_chord,
)

MAX_CHORDS = 64
MAX_NOTES = 256
CANDIDATES = 6


def key_shift(key: str) -> int:
    """Semitones that move ``key`` to the models' C major / A minor."""
    try:
        tonic, minor = key_tonic(key)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return shift_to_c(tonic, minor)


def parse_chords(value: object) -> list[int]:
    """'C G Am F' or ["C", "G", …] → chord labels (one per bar)."""
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise InputError('chords must be a progression like "C G Am F" (one chord per bar)')
    if len(items) > MAX_CHORDS:
        raise InputError(f"at most {MAX_CHORDS} chords")
    labels = []
    for item in items:
        if not isinstance(item, str):
            raise InputError('every chord must be a string such as "Am"')
        try:
            labels.append(parse_chord(item))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    return labels


def target_notes(density: float) -> float:
    """Notes per 4/4 bar the improviser aims at for a density of 0..1."""
    return 1.0 + 11.0 * density


class Improviser:
    """Bars over chords from the GAN generator, one bar ahead of the previous one."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self._lock = threading.Lock()  # torch modules are not safe to share across threads

    def bar(
        self, chord: int, previous: Sequence[int], density: float | None, seed: int | None
    ) -> list[int]:
        """16 step classes over ``chord`` (C-relative label), after ``previous`` (16 steps).

        Several candidates are drawn at once; with a density, the one whose note count is
        nearest the target wins (a musician's "play more / less" without retraining).
        """
        import torch

        from training.train import generate_bars

        count = CANDIDATES if density is not None else 1
        chords = torch.full((count, BAR_STEPS), chord, dtype=torch.long)
        prev = torch.tensor([list(previous)] * count, dtype=torch.long)
        with self._lock, torch.inference_mode():
            bars = generate_bars(self.generator, chords, prev, seed=seed).tolist()
        if density is None:
            return list(bars[0])
        goal = target_notes(density)
        return list(min(bars, key=lambda b: abs(len(bar_notes(list(b))) - goal)))

    def improvise(
        self,
        chords: Sequence[int],
        key: str,
        density: float | None = None,
        seed: int | None = None,
    ) -> list[Note]:
        """One bar per chord (absolute labels, in ``key``), as notes in ``key``."""
        shift = key_shift(key)
        previous = [0] * BAR_STEPS
        notes: list[Note] = []
        for index, chord in enumerate(chords):
            steps = self.bar(
                transpose_chord(chord, shift),
                previous,
                density,
                None if seed is None else seed + index,
            )
            previous = steps
            for note in bar_notes(steps):
                pitch = None if note.pitch is None else note.pitch - shift
                notes.append(Note(index * BAR_STEPS + note.onset, note.duration, pitch))
        return notes


class Composer:
    """Continuations of a seed melody from the LSTM composer."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._lock = threading.Lock()

    def compose(
        self,
        seed: Sequence[Note],
        key: str,
        notes: int = 32,
        temperature: float = 1.0,
        random_seed: int | None = None,
    ) -> list[Note]:
        """Up to ``notes`` events continuing ``seed`` (both in ``key``); returns only the new
        notes, with onsets after the seed's end."""
        import torch

        from training.generate import continue_melody

        if not 1 <= notes <= MAX_NOTES:
            raise InputError(f"notes must be 1-{MAX_NOTES}")
        if not 0.1 <= temperature <= 3.0:
            raise InputError("temperature must be 0.1-3.0")
        shift = key_shift(key)
        moved = [
            Note(n.onset, n.duration, None if n.pitch is None else n.pitch + shift) for n in seed
        ]
        tokens = encode(moved, range(0, 1 << 20, BAR_STEPS))
        if tokens[-1] == EOS:
            tokens = tokens[:-1]
        end = max((n.onset + n.duration for n in seed), default=0)
        generator = torch.Generator().manual_seed(random_seed) if random_seed is not None else None
        with self._lock, torch.inference_mode():
            new = continue_melody(self.model, tokens, notes, temperature, 0, generator)
        out, _ = decode([BOS, *new], start=end)
        return [
            Note(n.onset, n.duration, None if n.pitch is None else n.pitch - shift) for n in out
        ]
