"""Composing and improvising with the loaded models, in the session's key.

The models work in C major / A minor; these wrappers move seeds and chords there and the
results back. Both are blocking (torch): the node calls them from its model thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.errors import InputError
from training.tokenize import (
    BAR_PITCH_HI,
    BAR_PITCH_LO,
    BAR_STEPS,
    BOS,
    DUR0,
    EOS,
    STEP_HOLD,
    STEP_REST,
    Note,
    bar_notes,
    chord_pcs,
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


PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
DIATONIC = ((0, ""), (5, ""), (7, ""), (9, "m"), (2, "m"), (4, "m"))
"""A major key's triads, most common first (ties go to the earlier): I IV V vi ii iii."""
NOTES_PER_BAR = 4
MAX_HARMONY_BARS = 16


def harmonize(pitches: Sequence[int]) -> tuple[str, tuple[str, ...]]:
    """A key and a progression for a melody given as pitches (a work's transcription has no
    rhythm): the major key whose scale holds most of its notes (named as its relative minor
    when the melody ends on that minor's tonic), then one diatonic triad per
    ``NOTES_PER_BAR`` notes, the one whose tones cover most of them (the first counts double,
    and triple when it is the chord's root), for at most ``MAX_HARMONY_BARS`` bars. The bandmate
    improvises over these."""
    if not pitches:
        raise InputError("the melody has no notes to harmonize")
    classes = [int(p) % 12 for p in pitches]

    def fit(tonic: int) -> tuple[int, int]:
        inside = sum(1 for pc in classes if (pc - tonic) % 12 in MAJOR_SCALE)
        home = int(classes[-1] == tonic) + int(classes[0] == tonic)
        return inside, home

    tonic = max(range(12), key=fit)
    minor = (tonic + 9) % 12
    key = f"{PITCH_NAMES[minor]}m" if classes[-1] == minor else PITCH_NAMES[tonic]
    chords = []
    for start in range(0, min(len(classes), NOTES_PER_BAR * MAX_HARMONY_BARS), NOTES_PER_BAR):
        bar = classes[start : start + NOTES_PER_BAR]
        best, best_score = "", -1
        for degree, quality in DIATONIC:
            root = (tonic + degree) % 12
            tones = {root, (root + (3 if quality else 4)) % 12, (root + 7) % 12}
            score = sum((2 if i == 0 else 1) for i, pc in enumerate(bar) if pc in tones)
            score += int(bar[0] == root)  # a bar that starts on a chord's root: that chord
            if score > best_score:
                best, best_score = f"{PITCH_NAMES[root]}{quality}", score
        chords.append(best)
    return key, tuple(chords)


def target_notes(density: float) -> float:
    """Notes per 4/4 bar the improviser aims at for a density of 0..1."""
    return 1.0 + 11.0 * density


def _pitch(value: int) -> int:
    return value - 2 + BAR_PITCH_LO


def _step(pitch: int) -> int:
    return max(BAR_PITCH_LO, min(BAR_PITCH_HI, pitch)) - BAR_PITCH_LO + 2


def _neighbour(pitch: int, chord: int, upward: bool) -> int:
    """The nearest chord tone above (or below) ``pitch``; a scale step when there is no chord."""
    tones = chord_pcs(chord) or frozenset({0, 2, 4, 5, 7, 9, 11})
    candidates = range(pitch + 1, pitch + 13) if upward else range(pitch - 1, pitch - 13, -1)
    for candidate in candidates:
        if candidate % 12 in tones and BAR_PITCH_LO <= candidate <= BAR_PITCH_HI:
            return candidate
    return pitch


def fit_density(steps: Sequence[int], goal: int, chord: int) -> list[int]:
    """The bar with ``goal`` notes (1..16), keeping its contour: the generator's bars hold 2-3
    notes whatever it is asked, so choosing among candidates alone saturates early.

    More notes: the longest note is split at its middle, the new half moving to the next chord
    tone (alternating up and down, so lines neither climb nor sink); a bar of one-step notes
    fills its rests instead. Fewer notes: the shortest note is tied into the one before it (or
    silenced when it starts the bar)."""
    bar = list(steps)
    goal = max(1, min(BAR_STEPS, goal))
    upward = True
    while True:
        notes = bar_notes(bar)
        if len(notes) == goal:
            return bar
        if len(notes) < goal:
            if not notes:  # an empty bar starts on the chord's root, mid-range
                root = min(chord_pcs(chord) or {0})
                bar[0] = _step(60 + root)
                continue
            longest = max(notes, key=lambda n: (n.duration, -n.onset))
            if longest.duration >= 2:
                middle = longest.onset + longest.duration // 2
                assert longest.pitch is not None
                bar[middle] = _step(_neighbour(longest.pitch, chord, upward))
            else:
                rests = [i for i, v in enumerate(bar) if v == STEP_REST]
                if not rests:
                    return bar  # every step already starts a note
                at = rests[len(rests) // 2]
                before = [n for n in notes if n.onset < at]
                source = before[-1] if before else notes[0]
                assert source.pitch is not None
                bar[at] = _step(_neighbour(source.pitch, chord, upward))
            upward = not upward
        else:
            shortest = min(notes[1:] or notes, key=lambda n: (n.duration, n.onset))
            previous = [n for n in notes if n.onset < shortest.onset]
            touching = previous and previous[-1].onset + previous[-1].duration == shortest.onset
            bar[shortest.onset] = STEP_HOLD if touching else STEP_REST
            if not touching:
                for i in range(shortest.onset + 1, shortest.onset + shortest.duration):
                    bar[i] = STEP_REST


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
        best = min(bars, key=lambda b: abs(len(bar_notes(list(b))) - goal))
        return fit_density(best, round(goal), chord)

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


def bar_steps_of(time_signature: tuple[int, int]) -> int:
    """Sixteenths in one bar of ``beats/unit`` (4/4 → 16, 6/8 → 12, 7/8 → 14)."""
    beats, unit = time_signature
    return beats * 16 // unit


def pickup_steps_of(pickup_beats: float, time_signature: tuple[int, int]) -> int:
    """A pickup (anacrusis) of ``pickup_beats`` beats of the metre's unit, in sixteenths; it
    must be shorter than a bar and land on the sixteenth grid."""
    beats, unit = time_signature
    steps = pickup_beats * 16 / unit
    if not 0 <= pickup_beats < beats or steps != int(steps):
        raise InputError(
            f"pickup_beats must be 0 to under {beats} beats of a 1/{unit} note, on the "
            "sixteenth grid"
        )
    return int(steps)


@dataclass(frozen=True)
class Composition:
    """What ``Composer.compose`` made."""

    notes: list[Note]
    requested: int
    ended_early: bool
    """The model ended the piece (its end-of-piece token) before ``requested`` events."""


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
        time_signature: tuple[int, int] = (4, 4),
        pickup_steps: int = 0,
    ) -> Composition:
        """Up to ``notes`` events continuing ``seed`` (both in ``key``); returns only the new
        notes, with onsets after the seed's end. The seed's barlines follow the metre from its
        first downbeat, ``pickup_steps`` after its first note (the model learned real bars:
        a 4/4 grid laid over a 6/8 tune or a pickup costs it 21-36 % in likelihood)."""
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
        bar = bar_steps_of(time_signature)
        barlines = {0, *range(pickup_steps, 1 << 20, bar)}
        tokens = encode(moved, barlines)
        if tokens[-1] == EOS:
            tokens = tokens[:-1]
        end = max((n.onset + n.duration for n in seed), default=0)
        generator = torch.Generator().manual_seed(random_seed) if random_seed is not None else None
        with self._lock, torch.inference_mode():
            new = continue_melody(self.model, tokens, notes, temperature, 0, generator)
        events = sum(1 for token in new if token >= DUR0)
        out, _ = decode([BOS, *new], start=end)
        moved_back = [
            Note(n.onset, n.duration, None if n.pitch is None else n.pitch - shift) for n in out
        ]
        return Composition(moved_back, notes, ended_early=events < notes)
