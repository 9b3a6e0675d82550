"""The music21 corpus as work units, and the extraction of one piece into plain values.

A *unit* is one piece: a Bach chorale (a corpus path) or one tune of an ABC collection (its
text, cut from the collection file by its ``X:`` number). Listing units reads files only;
parsing happens in ``extract``, which the Spark job runs on its workers. A piece that does
not parse or has no usable melody raises ``PieceError``; the job counts it and moves on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.tokenize import (
    BAR_STEPS,
    QUALITIES,
    Note,
    bar_steps,
    chord_id,
    encode,
    normalize,
    roll_frame,
    shift_to_c,
    transpose_chord,
)

COLLECTIONS: dict[str, str] = {
    "chorales": "Bach chorales (chordified: a chord under every soprano note)",
    "essen": "Essen folk songs (essenFolksong/*.abc)",
    "oneills": "O'Neill's Music of Ireland, 1850 (oneills1850/*.abc)",
    "ryans": "Ryan's Mammoth Collection (ryansMammoth/*.abc)",
}
_ABC_DIRS = {"essen": "essenFolksong", "oneills": "oneills1850", "ryans": "ryansMammoth"}
STEPS_PER_QUARTER = 4


class PieceError(ValueError):
    """This piece cannot be used (parse failure, no melody, odd metre)."""


@dataclass(frozen=True)
class Unit:
    """One piece to extract: where it comes from and how to load it."""

    piece_id: str
    collection: str
    source: str  # a music21 corpus name, or ABC text
    is_abc: bool


@dataclass
class Piece:
    """A piece reduced to plain values, transposed to C major / A minor (rolls: to C)."""

    piece_id: str
    collection: str
    tonic_pc: int
    minor: bool
    beats_per_bar: int
    beat_unit: int
    melody: list[Note]
    bars: list[int]
    chords: list[int] | None = None  # one label per step of the melody
    romans: list[str] | None = None  # one Roman numeral per beat (chorales)
    roll: list[list[int]] | None = None  # chorales: one frame per quarter note
    extras: dict[str, Any] = field(default_factory=dict)

    def tokens(self) -> list[int]:
        """The melody's event tokens."""
        return encode(self.melody, self.bars)

    def melody_hash(self) -> str:
        """Identifies duplicate tunes across collections (pitches and durations only)."""
        text = ",".join(f"{n.pitch}/{n.duration}" for n in normalize(self.melody))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def gan_bars(self) -> Iterator[tuple[int, list[int], list[int], list[int]]]:
        """(bar index, steps, chords, previous bar's steps) for every full 4/4 bar with chords."""
        if self.chords is None or (self.beats_per_bar, self.beat_unit) != (4, 4):
            return
        notes = normalize(self.melody)
        previous = [0] * BAR_STEPS
        for index, start in enumerate(self.bars):
            end = start + BAR_STEPS
            if end > len(self.chords) or (
                index + 1 < len(self.bars) and self.bars[index + 1] != end
            ):
                continue  # a pickup or a shortened bar
            chords = self.chords[start:end]
            if not any(chords):
                continue
            steps = bar_steps(notes, start)
            yield index, steps, chords, previous
            previous = steps


def _core_dir() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def split_abc(text: str) -> list[tuple[int, str]]:
    """(X number, tune text) for each tune of an ABC file; the file header goes with each."""
    chunks = re.split(r"(?m)^(?=X:)", text)
    header = chunks[0] if chunks and not chunks[0].startswith("X:") else ""
    tunes = []
    for chunk in chunks:
        match = re.match(r"X:\s*(\d+)", chunk)
        if match:
            tunes.append((int(match.group(1)), header + chunk))
    return tunes


def list_units(collections: Sequence[str], limit: int | None = None) -> list[Unit]:
    """Every piece of ``collections``, in a stable order (``limit``: at most that many each)."""
    units: list[Unit] = []
    for name in collections:
        if name not in COLLECTIONS:
            raise ValueError(f"unknown collection {name!r}; choose from {', '.join(COLLECTIONS)}")
        found: list[Unit] = []
        if name == "chorales":
            from music21 import corpus

            for chorale in corpus.chorales.Iterator(returnType="filename"):
                found.append(Unit(f"chorales/{chorale}", name, str(chorale), is_abc=False))
        else:
            directory = _core_dir() / _ABC_DIRS[name]
            for path in sorted(directory.glob("*.abc")):
                text = path.read_text(encoding="latin-1")
                for number, tune in split_abc(text):
                    found.append(Unit(f"{name}/{path.stem}#{number}", name, tune, is_abc=True))
        units.extend(found[:limit] if limit is not None else found)
    return units


def _load(unit: Unit) -> Any:
    from music21 import converter, corpus

    try:
        if unit.is_abc:
            return converter.parse(unit.source, format="abc")
        return corpus.parse(unit.source)
    except Exception as exc:  # music21 raises many kinds; all mean "unusable piece"
        raise PieceError(f"{unit.piece_id}: does not parse ({type(exc).__name__}: {exc})") from exc


def _key_of(score: Any) -> tuple[int, bool]:
    from music21 import key

    found = score.recurse().getElementsByClass(key.Key).first()
    if found is None:
        found = score.analyze("key")
    return int(found.tonic.pitchClass), found.mode == "minor"


def _steps(quarters: Any) -> int:
    return round(float(quarters) * STEPS_PER_QUARTER)


def _melody(part: Any) -> list[Note]:
    from music21 import chord, note

    notes = []
    part.stripTies(inPlace=True)  # a copy (the default) is quadratic in spanners
    for element in part.flatten().notesAndRests:
        if element.duration.isGrace or element.quarterLength <= 0:
            continue
        onset = _steps(element.offset)
        duration = _steps(element.offset + element.quarterLength) - onset
        if duration <= 0:
            continue
        if isinstance(element, note.Note):
            pitch: int | None = int(element.pitch.midi)
        elif isinstance(element, chord.Chord):
            pitch = int(max(p.midi for p in element.pitches))  # a double stop: the top voice
        else:
            pitch = None
        notes.append(Note(onset, duration, pitch))
    return notes


def _quality(chord_obj: Any) -> str:
    quality = chord_obj.quality
    if quality in ("major", "minor", "diminished", "augmented"):
        return {"major": "maj", "minor": "min", "diminished": "dim", "augmented": "aug"}[quality]
    return "min" if chord_obj.isMinorTriad() else "maj"


def extract(unit: Unit) -> Piece:
    """Parse one unit and reduce it to a ``Piece`` (raises ``PieceError``)."""
    from music21 import chord, harmony, meter, roman

    score = _load(unit)
    if hasattr(score, "scores") and len(score.scores):  # an ABC opus of one tune
        score = score.scores[0]
    parts = list(getattr(score, "parts", [])) or [score]
    melody_part = parts[0]
    signature = score.recurse().getElementsByClass(meter.TimeSignature).first()
    beats, unit_value = (signature.numerator, signature.denominator) if signature else (4, 4)
    try:
        tonic, minor = _key_of(score)
    except Exception as exc:
        raise PieceError(f"{unit.piece_id}: no key ({exc})") from exc
    raw = _melody(melody_part)
    if sum(1 for n in raw if n.pitch is not None) < 4:
        raise PieceError(f"{unit.piece_id}: fewer than 4 melody notes")
    shift = shift_to_c(tonic, minor)
    melody = [Note(n.onset, n.duration, None if n.pitch is None else n.pitch + shift) for n in raw]
    bars = sorted({_steps(m.offset) for m in melody_part.getElementsByClass("Measure")})
    end = max(n.onset + n.duration for n in melody)
    piece = Piece(unit.piece_id, unit.collection, tonic, minor, beats, unit_value, melody, bars)

    if unit.collection == "chorales":
        roll_shift = (0 - tonic + 6) % 12 - 6  # the roll goes to a C tonic in both modes
        chordified = score.chordify()
        chords = [0] * end
        music_key = score.analyze("key")
        onsets = []
        for element in chordified.flatten().getElementsByClass(chord.Chord):
            onset = _steps(element.offset)
            if onset >= end:
                continue
            root = element.root()
            label = chord_id(root.pitchClass, _quality(element)) if root is not None else 0
            onsets.append((onset, transpose_chord(label, shift)))
        for (onset, label), nxt in zip(onsets, [*onsets[1:], (end, 0)], strict=True):
            for t in range(onset, min(nxt[0], end)):
                chords[t] = label
        n_frames = -(-end // STEPS_PER_QUARTER)
        frames: list[list[int]] = [[] for _ in range(n_frames)]
        romans = ["N"] * n_frames
        for element in chordified.flatten().getElementsByClass(chord.Chord):
            onset = _steps(element.offset)
            stop = min(onset + _steps(element.quarterLength), end)
            first = -(-onset // STEPS_PER_QUARTER) * STEPS_PER_QUARTER
            if first >= stop:
                continue
            frame = roll_frame(int(p.midi) + roll_shift for p in element.pitches)
            try:
                figure = str(roman.romanNumeralFromChord(element, music_key).figure)
            except Exception:  # an unnameable sonority keeps "N"
                figure = "N"
            for beat in range(first, stop, STEPS_PER_QUARTER):
                frames[beat // STEPS_PER_QUARTER] = frame
                romans[beat // STEPS_PER_QUARTER] = figure
        piece.chords, piece.romans, piece.roll = chords, romans, frames
    else:
        symbols = list(score.recurse().getElementsByClass(harmony.ChordSymbol))
        if symbols:
            chords = [0] * end
            marks = []
            for symbol in symbols:
                root = symbol.root()
                if root is None:
                    continue
                quality = _quality(symbol)
                if quality not in QUALITIES:
                    continue
                offset = _steps(symbol.getOffsetInHierarchy(score))
                marks.append((offset, transpose_chord(chord_id(root.pitchClass, quality), shift)))
            marks.sort()
            for (onset, label), nxt in zip(marks, [*marks[1:], (end, 0)], strict=True):
                for t in range(max(onset, 0), min(nxt[0], end)):
                    chords[t] = label
            if any(chords):
                piece.chords = chords
    return piece
