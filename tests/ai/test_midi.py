"""Seed text and MIDI files: round trips and clear refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.ai.midi import from_midi, parse_seed, to_midi
from node.errors import InputError
from training.tokenize import Note


def test_seed_text() -> None:
    assert parse_seed("C4:4 D#4:2 r:2 Bb3") == [
        Note(0, 4, 60),
        Note(4, 2, 63),
        Note(6, 2, None),
        Note(8, 4, 58),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("C4:4 H2", "'H2' is not a note"),
        ("C4:0", "1-64"),
        ("A9:4", "MIDI range"),
        ("C4 " * 600, "more than 512"),
    ],
)
def test_bad_seeds(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_seed(text)


@given(
    st.lists(
        st.tuples(st.integers(0, 8), st.integers(1, 32), st.integers(0, 127)),
        min_size=1,
        max_size=30,
    )
)
def test_midi_round_trip(items) -> None:
    notes, time = [], 0
    for gap, duration, pitch in items:
        time += gap
        notes.append(Note(time, duration, pitch))
        time += duration
    assert from_midi(to_midi(notes, 97.0)) == notes


@pytest.mark.parametrize("data", [b"", b"MThd", b"MThd\x00\x00\x00\x06" + b"\xff" * 40])
def test_bad_midi_files(data: bytes) -> None:
    with pytest.raises(InputError, match="MIDI"):
        from_midi(data)


def test_a_midi_file_without_notes() -> None:
    with pytest.raises(InputError, match="no notes"):
        from_midi(to_midi([Note(0, 4, None)], 120))


def _track_file(division: int, events: list[tuple[int, int, int]]) -> bytes:
    """A format-0 MIDI file with ``division`` and (delta ticks, status, note) events."""
    body = b""
    for delta, status, note in events:
        rest = delta
        vlq = [rest & 0x7F]
        rest >>= 7
        while rest:
            vlq.insert(0, 0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(vlq) + bytes([status, note, 90 if status == 0x90 else 0])
    body += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + b"\x00\x00\x00\x01" + division.to_bytes(2, "big")
    return header + b"MTrk" + len(body).to_bytes(4, "big") + body


def test_a_midi_file_with_time_division_0_is_refused() -> None:
    data = _track_file(0, [(0, 0x90, 60), (100, 0x80, 60)])
    with pytest.raises(InputError, match="time division"):
        from_midi(data)


def test_a_huge_gap_is_refused_and_a_silent_lead_in_dropped() -> None:
    per_step = 120  # 480 ticks per quarter note
    gap = [(0, 0x90, 60), (per_step, 0x80, 60), (10**7, 0x90, 62), (per_step, 0x80, 62)]
    with pytest.raises(InputError, match="span"):
        from_midi(_track_file(480, gap))
    late = [(1000 * 16 * per_step + 3 * per_step, 0x90, 64), (2 * per_step, 0x80, 64)]
    assert from_midi(_track_file(480, late)) == [Note(3, 2, 64)]
