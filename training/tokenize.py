"""Token vocabularies for melodies, chords, one-bar improvisations and chorale piano rolls.

Pure Python over plain values (no music21): the corpus job extracts notes from scores, these
functions turn them into integers and back. Time is counted in sixteenth notes ("steps").

Melody events (the composer's language)::

    BOS [BAR] (NOTE_p | REST) DUR_d [BAR] (NOTE_p | REST) DUR_d ... EOS

A BAR token precedes an event that starts on a barline. Pitches outside the range are moved
by octaves into it; durations are rounded to the nearest one in ``DURATIONS`` (longer notes
are split into tied pieces, which decode as repeated notes — rare in this corpus).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TOKENIZER_VERSION = 1

PAD, BOS, EOS, BAR, REST = 0, 1, 2, 3, 4
PITCH_LO, PITCH_HI = 36, 96  # MIDI, inclusive
NOTE0 = 5
DURATIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 20, 24, 28, 32)
DUR0 = NOTE0 + (PITCH_HI - PITCH_LO + 1)
VOCAB_SIZE = DUR0 + len(DURATIONS)

# Chords: 0 = none, else 1 + root_pc * 4 + quality.
QUALITIES = ("maj", "min", "dim", "aug")
N_CHORDS = 1 + 12 * len(QUALITIES)
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_NAME_PC = {
    "C": 0,
    "B#": 0,
    "C#": 1,
    "Db": 1,
    "D": 2,
    "D#": 3,
    "Eb": 3,
    "E": 4,
    "Fb": 4,
    "E#": 5,
    "F": 5,
    "F#": 6,
    "Gb": 6,
    "G": 7,
    "G#": 8,
    "Ab": 8,
    "A": 9,
    "A#": 10,
    "Bb": 10,
    "B": 11,
    "Cb": 11,
}
CHORD_TONES = {0: (0, 4, 7), 1: (0, 3, 7), 2: (0, 3, 6), 3: (0, 4, 8)}

# One bar for the improviser: 16 steps, each REST, HOLD (the previous note goes on) or a pitch.
BAR_STEPS = 16
STEP_REST, STEP_HOLD = 0, 1
BAR_PITCH_LO, BAR_PITCH_HI = 48, 84
STEP_CLASSES = 2 + (BAR_PITCH_HI - BAR_PITCH_LO + 1)

# Chorale piano roll: one frame per quarter note, the 88 piano keys.
ROLL_LO, ROLL_KEYS = 21, 88


@dataclass(frozen=True)
class Note:
    """A melody event on the sixteenth grid; ``pitch`` None is a rest."""

    onset: int
    duration: int
    pitch: int | None


def fold_pitch(pitch: int, lo: int = PITCH_LO, hi: int = PITCH_HI) -> int:
    """Move ``pitch`` by octaves into [lo, hi]."""
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def split_duration(steps: int) -> list[int]:
    """``steps`` (≥ 1) as a sum of representable durations, longest first."""
    if steps < 1:
        raise ValueError("a duration must be at least one step")
    parts = []
    while steps > 0:
        index = bisect.bisect_right(DURATIONS, steps) - 1
        parts.append(DURATIONS[index])
        steps -= DURATIONS[index]
    return parts


def normalize(notes: Iterable[Note]) -> list[Note]:
    """The representable form of a melody: sorted, contiguous, in range, rests merged.

    Gaps become rests, overlaps are cut, out-of-range pitches fold by octaves and long
    events split into representable pieces. ``encode``/``decode`` round-trip exactly on it.
    """
    out: list[Note] = []
    time = None
    for note in sorted(notes, key=lambda n: n.onset):
        if note.duration <= 0:
            continue
        if time is None:
            time = note.onset
        if note.onset > time:
            out.append(Note(time, note.onset - time, None))
            time = note.onset
        end = note.onset + note.duration
        if end <= time:
            continue  # wholly overlapped by the previous note
        pitch = None if note.pitch is None else fold_pitch(note.pitch)
        out.append(Note(time, end - time, pitch))
        time = end
    merged: list[Note] = []
    for note in out:
        if merged and note.pitch is None and merged[-1].pitch is None:
            last = merged.pop()
            merged.append(Note(last.onset, last.duration + note.duration, None))
        else:
            merged.append(note)
    result: list[Note] = []
    for note in merged:
        onset = note.onset
        for part in split_duration(note.duration):
            result.append(Note(onset, part, note.pitch))
            onset += part
    return result


def encode(notes: Sequence[Note], bars: Iterable[int] = ()) -> list[int]:
    """Tokens for a melody; ``bars`` are barline onsets in steps."""
    barlines = set(bars)
    tokens = [BOS]
    for note in normalize(notes):
        if note.onset in barlines:
            tokens.append(BAR)
        tokens.append(REST if note.pitch is None else NOTE0 + note.pitch - PITCH_LO)
        tokens.append(DUR0 + DURATIONS.index(note.duration))
    tokens.append(EOS)
    return tokens


def decode(tokens: Sequence[int], start: int = 0) -> tuple[list[Note], list[int]]:
    """Notes and barline onsets from tokens; stray or unfinished tokens are skipped.

    Generated sequences can be ill-formed (a duration without a pitch, a pitch without a
    duration): decoding keeps every well-formed (pitch, duration) pair and nothing else.
    """
    notes: list[Note] = []
    bars: list[int] = []
    time = start
    pending: int | bool | None = False  # False: no pitch waiting; None: a rest waiting
    for token in tokens:
        if token == BAR:
            if pending is False:
                bars.append(time)
        elif token == REST:
            pending = None
        elif NOTE0 <= token < DUR0:
            pending = token - NOTE0 + PITCH_LO
        elif DUR0 <= token < VOCAB_SIZE:
            if pending is not False:
                duration = DURATIONS[token - DUR0]
                notes.append(Note(time, duration, pending))
                time += duration
                pending = False
        elif token == EOS:
            break
    return notes, bars


def token_name(token: int) -> str:
    """A readable name for one melody token."""
    if token < NOTE0:
        return ("PAD", "BOS", "EOS", "BAR", "REST")[token]
    if token < DUR0:
        return f"NOTE_{token - NOTE0 + PITCH_LO}"
    if token < VOCAB_SIZE:
        return f"DUR_{DURATIONS[token - DUR0]}"
    raise ValueError(f"token {token} is outside the vocabulary of {VOCAB_SIZE}")


# ------------------------------------------------------------------ chords
def chord_id(root_pc: int, quality: str) -> int:
    """Chord label for a root pitch class and one of ``QUALITIES``."""
    return 1 + (root_pc % 12) * len(QUALITIES) + QUALITIES.index(quality)


def chord_parts(label: int) -> tuple[int, int] | None:
    """(root pitch class, quality index) of a chord label, or None for no chord."""
    if label == 0:
        return None
    if not 0 < label < N_CHORDS:
        raise ValueError(f"chord label {label} is outside 0..{N_CHORDS - 1}")
    return (label - 1) // len(QUALITIES), (label - 1) % len(QUALITIES)


def chord_pcs(label: int) -> frozenset[int]:
    """Pitch classes of a chord label's triad (empty for no chord)."""
    parts = chord_parts(label)
    if parts is None:
        return frozenset()
    root, quality = parts
    return frozenset((root + step) % 12 for step in CHORD_TONES[quality])


def transpose_chord(label: int, semitones: int) -> int:
    """The same chord ``semitones`` higher."""
    parts = chord_parts(label)
    if parts is None:
        return 0
    root, quality = parts
    return 1 + ((root + semitones) % 12) * len(QUALITIES) + quality


def parse_chord(symbol: str) -> int:
    """'C', 'F#m', 'Bbdim', 'Eaug', 'G7', 'Am7' → chord label (sevenths keep their triad)."""
    text = symbol.strip()
    if not text:
        raise ValueError("empty chord symbol")
    name = text[0].upper()
    rest = text[1:]
    if rest[:1] in ("#", "b"):
        name += rest[0]
        rest = rest[1:]
    if name not in _NAME_PC:
        raise ValueError(f"{symbol!r} is not a chord: start with a note name A-G")
    suffixes = {
        "": "maj",
        "maj": "maj",
        "M": "maj",
        "7": "maj",
        "maj7": "maj",
        "M7": "maj",
        "6": "maj",
        "m": "min",
        "min": "min",
        "-": "min",
        "m7": "min",
        "min7": "min",
        "m6": "min",
        "dim": "dim",
        "o": "dim",
        "m7b5": "dim",
        "dim7": "dim",
        "o7": "dim",
        "aug": "aug",
        "+": "aug",
    }
    if rest not in suffixes:
        raise ValueError(
            f"{symbol!r}: unknown chord quality {rest!r} (use maj, m, dim, aug, 7, m7)"
        )
    return chord_id(_NAME_PC[name], suffixes[rest])


def chord_name(label: int) -> str:
    """'C', 'F#m', 'Bdim', 'Eaug' or 'N' for no chord."""
    parts = chord_parts(label)
    if parts is None:
        return "N"
    root, quality = parts
    return NOTE_NAMES[root] + ("", "m", "dim", "aug")[quality]


def key_tonic(key: str) -> tuple[int, bool]:
    """A session key such as 'F#m', 'Bb major', 'C' → (tonic pitch class, is_minor)."""
    text = key.strip()
    name = text[:2] if text[1:2] in ("#", "b") else text[:1]
    rest = text[len(name) :].strip()
    if name not in _NAME_PC:
        raise ValueError(f"{key!r} is not a key")
    minor = rest in ("m", "min", "minor")
    if not minor and rest not in ("", "maj", "major"):
        raise ValueError(f"{key!r}: the mode must be major or minor")
    return _NAME_PC[name], minor


def shift_to_c(tonic_pc: int, minor: bool) -> int:
    """Semitones (-6..5) that move a key to C major or A minor."""
    target = 9 if minor else 0
    return (target - tonic_pc + 6) % 12 - 6


# -------------------------------------------------------------------- bars
def bar_steps(notes: Sequence[Note], bar_start: int) -> list[int]:
    """One bar of a normalized melody as 16 step classes (REST, HOLD, pitch)."""
    steps = [STEP_REST] * BAR_STEPS
    for note in notes:
        for step in range(BAR_STEPS):
            t = bar_start + step
            if not note.onset <= t < note.onset + note.duration:
                continue
            if note.pitch is None:
                steps[step] = STEP_REST
            elif t == note.onset or step == 0:
                pitch = fold_pitch(note.pitch, BAR_PITCH_LO, BAR_PITCH_HI)
                steps[step] = 2 + pitch - BAR_PITCH_LO
            else:
                steps[step] = STEP_HOLD
    return steps


def bar_notes(steps: Sequence[int]) -> list[Note]:
    """The notes of one bar of step classes (onsets relative to the bar); a stray HOLD rests."""
    notes: list[Note] = []
    for step, value in enumerate(steps):
        if value >= 2:
            notes.append(Note(step, 1, value - 2 + BAR_PITCH_LO))
        elif value == STEP_HOLD and notes and notes[-1].onset + notes[-1].duration == step:
            last = notes[-1]
            notes[-1] = Note(last.onset, last.duration + 1, last.pitch)
    return notes


def step_pitches(steps: Sequence[int]) -> list[int | None]:
    """The pitch sounding at each step (None in rests)."""
    out: list[int | None] = []
    current: int | None = None
    for value in steps:
        if value >= 2:
            current = value - 2 + BAR_PITCH_LO
        elif value == STEP_REST:
            current = None
        out.append(current)
    return out


# ------------------------------------------------------------- piano roll
def roll_frame(pitches: Iterable[int]) -> list[int]:
    """Sorted key indices (0..87) of the pitches sounding in one frame."""
    return sorted({p - ROLL_LO for p in pitches if ROLL_LO <= p < ROLL_LO + ROLL_KEYS})
