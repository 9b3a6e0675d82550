"""Notes ↔ Standard MIDI Files (through mido), and the seed-melody text format.

Notes are ``training.tokenize.Note`` on the sixteenth grid (``onset``/``duration`` in steps).
Text seeds look like ``"C4:4 D4:2 E4:2 r:4 G4:8"`` (pitch name with octave, or ``r`` for a
rest, then the length in sixteenths; ``:4`` is a quarter note and is the default).
"""

from __future__ import annotations

import io
import re

import mido

from node.errors import InputError
from training.tokenize import Note

TICKS_PER_STEP = 120  # 480 per quarter note
MAX_MIDI_BYTES = 256 * 1024
MAX_SEED_NOTES = 512
MAX_SEED_STEPS = 16 * 128
"""A seed spans at most 128 bars of sixteenths (a huge gap would tie up the model thread)."""
_NOTE_RE = re.compile(r"^([A-Ga-g])([#b]?)(-?\d)(?::(\d{1,2}))?$|^[rR](?::(\d{1,2}))?$")
_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def parse_seed(text: str) -> list[Note]:
    """Notes from the text format (a clear error names the bad item)."""
    notes: list[Note] = []
    onset = 0
    items = text.split()
    if not items:
        raise InputError('seed is empty: give notes like "C4:4 D4:4 E4:8"')
    if len(items) > MAX_SEED_NOTES:
        raise InputError(f"seed has more than {MAX_SEED_NOTES} notes")
    for item in items:
        match = _NOTE_RE.match(item)
        if match is None:
            raise InputError(f'seed item {item!r} is not a note like "C4:4", "F#3:2" or "r:4"')
        if item[0] in "rR":
            length = int(match.group(5) or 4)
            pitch = None
        else:
            letter, accidental, octave, length_text = match.group(1, 2, 3, 4)
            length = int(length_text or 4)
            semitone = {"#": 1, "b": -1, "": 0}[accidental]
            pitch = 12 * (int(octave) + 1) + _PC[letter.upper()] + semitone
            if not 0 <= pitch <= 127:
                raise InputError(f"seed item {item!r} is outside the MIDI range")
        if not 1 <= length <= 64:
            raise InputError(f"seed item {item!r}: a length is 1-64 sixteenths")
        notes.append(Note(onset, length, pitch))
        onset += length
    return notes


def to_midi(notes: list[Note], tempo_bpm: float, program: int = 0) -> bytes:
    """A type-0 MIDI file of ``notes`` at ``tempo_bpm`` (rests are gaps)."""
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    events: list[tuple[int, int, int]] = []  # (tick, order: offs first, pitch)
    for note in notes:
        if note.pitch is None:
            continue
        events.append((note.onset * TICKS_PER_STEP, 1, note.pitch))
        events.append(((note.onset + note.duration) * TICKS_PER_STEP, 0, note.pitch))
    now = 0
    for tick, kind, pitch in sorted(events):
        message = "note_on" if kind else "note_off"
        track.append(mido.Message(message, note=pitch, velocity=90 if kind else 0, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=4 * TICKS_PER_STEP)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _read(data: bytes) -> mido.MidiFile:
    if len(data) > MAX_MIDI_BYTES:
        raise InputError(f"MIDI file is larger than {MAX_MIDI_BYTES // 1024} KiB")
    try:
        return mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises OSError, ValueError, EOFError, KeyError…
        raise InputError(f"not a readable MIDI file ({type(exc).__name__}: {exc})") from exc


def midi_time_signature(data: bytes) -> tuple[int, int] | None:
    """The first time signature a MIDI file states, if it is one a session can have."""
    for track in _read(data).tracks:
        for message in track:
            if message.type == "time_signature":
                metre = (int(message.numerator), int(message.denominator))
                if 1 <= metre[0] <= 16 and metre[1] in {2, 4, 8, 16}:
                    return metre
                return None
    return None


def from_midi(data: bytes, bar_steps: int = 16) -> list[Note]:
    """The top voice of a MIDI file as notes on the sixteenth grid (a silent lead-in of whole
    ``bar_steps`` bars dropped)."""
    midi = _read(data)
    if not isinstance(midi.ticks_per_beat, int) or midi.ticks_per_beat <= 0:
        raise InputError(
            f"the MIDI file's time division is {midi.ticks_per_beat}: it needs ticks per beat"
            " (1-32767; SMPTE time is not supported)"
        )
    per_step = midi.ticks_per_beat / 4
    started: dict[int, int] = {}
    spans: list[tuple[int, int, int]] = []
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0:
                started[message.note] = tick
            elif message.type in ("note_off", "note_on") and message.note in started:
                begin = started.pop(message.note)
                spans.append((begin, tick, message.note))
    if not spans:
        raise InputError("the MIDI file has no notes")
    top: dict[int, tuple[int, int]] = {}
    for begin, end, pitch in spans:
        onset = round(begin / per_step)
        length = max(1, round(end / per_step) - onset)
        if onset not in top or pitch > top[onset][1]:
            top[onset] = (length, pitch)
    # A silent lead-in of whole bars is dropped (the bar position is kept).
    first_bar = min(top) // bar_steps * bar_steps
    notes = [
        Note(onset - first_bar, length, pitch) for onset, (length, pitch) in sorted(top.items())
    ]
    if len(notes) > MAX_SEED_NOTES:
        raise InputError(f"the MIDI file has more than {MAX_SEED_NOTES} notes")
    span = notes[-1].onset + notes[-1].duration
    if span > MAX_SEED_STEPS:
        raise InputError(
            f"the MIDI file's notes span {span} sixteenths; a seed spans at most"
            f" {MAX_SEED_STEPS} ({MAX_SEED_STEPS // 16} bars of 4/4)"
        )
    return notes
