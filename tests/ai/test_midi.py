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
