"""Tokenizer round trips: generated melodies (hypothesis) and real corpus pieces."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from training import tokenize as tk
from training.tokenize import Note

notes_strategy = st.lists(
    st.tuples(
        st.integers(0, 40),  # gap before the note (becomes a rest)
        st.integers(1, 70),  # duration in steps (long ones split)
        st.one_of(st.none(), st.integers(0, 127)),
    ),
    max_size=40,
)


def _melody(items: list[tuple[int, int, int | None]]) -> list[Note]:
    notes, time = [], 0
    for gap, duration, pitch in items:
        time += gap
        notes.append(Note(time, duration, pitch))
        time += duration
    return notes


@given(notes_strategy, st.lists(st.integers(0, 2000), max_size=20))
@example([(0, 1, 60)], [0])
@example([(0, 33, 127), (5, 1, 0)], [0, 16, 32])  # split, folded high and low
@example([], [])
def test_encode_decode_round_trip(items, bars) -> None:
    notes = _melody(items)
    tokens = tk.encode(notes, bars)
    assert tokens[0] == tk.BOS and tokens[-1] == tk.EOS
    assert all(0 < t < tk.VOCAB_SIZE for t in tokens)
    decoded, decoded_bars = tk.decode(tokens, start=tk.normalize(notes)[0].onset if notes else 0)
    assert decoded == tk.normalize(notes)
    assert tk.encode(decoded, decoded_bars) == tokens  # bars survive too
    assert set(decoded_bars) <= set(bars)


@given(notes_strategy)
def test_normalize_is_contiguous_and_representable(items) -> None:
    normal = tk.normalize(_melody(items))
    for a, b in itertools.pairwise(normal):
        assert a.onset + a.duration == b.onset
    for note in normal:
        assert note.duration in tk.DURATIONS
        assert note.pitch is None or tk.PITCH_LO <= note.pitch <= tk.PITCH_HI
    assert tk.normalize(normal) == normal  # idempotent


def test_decode_skips_ill_formed_tokens() -> None:
    dur4 = tk.DUR0 + tk.DURATIONS.index(4)
    note60 = tk.NOTE0 + 60 - tk.PITCH_LO
    tokens = [tk.BOS, dur4, note60, note60, dur4, tk.REST, tk.BAR, note60]
    notes, _ = tk.decode(tokens)
    assert notes == [Note(0, 4, 60)]


@given(st.lists(st.integers(0, tk.STEP_CLASSES - 1), min_size=16, max_size=16))
def test_bar_steps_round_trip(steps) -> None:
    notes = tk.bar_notes(steps)
    rebuilt = tk.bar_steps(notes, 0)
    # Every note of the bar comes back at its onset with its length; rests stay rests.
    assert tk.bar_notes(rebuilt) == notes


@pytest.mark.parametrize(
    ("symbol", "name", "pcs"),
    [
        ("C", "C", {0, 4, 7}),
        ("F#m", "F#m", {6, 9, 1}),
        ("Bb7", "Bb", {10, 2, 5}),
        ("Edim", "Edim", {4, 7, 10}),
        ("Aaug", "Aaug", {9, 1, 5}),
        ("Dm7", "Dm", {2, 5, 9}),
    ],
)
def test_chords(symbol, name, pcs) -> None:
    label = tk.parse_chord(symbol)
    assert tk.chord_name(label) == name
    assert tk.chord_pcs(label) == pcs
    assert tk.parse_chord(tk.chord_name(label)) == label
    assert tk.transpose_chord(tk.transpose_chord(label, 5), -5) == label


@pytest.mark.parametrize("bad", ["", "H", "Cx", "C#m9", "m"])
def test_bad_chords_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="chord"):
        tk.parse_chord(bad)


def test_keys_move_to_c_major_or_a_minor() -> None:
    assert tk.shift_to_c(*tk.key_tonic("G")) == 5
    for key in ("C", "G", "F#", "Bb major", "Am", "C#m", "Eb minor"):
        tonic, minor = tk.key_tonic(key)
        shift = tk.shift_to_c(tonic, minor)
        assert -6 <= shift <= 5
        assert (tonic + shift) % 12 == (9 if minor else 0)


CORPUS_UNITS = [("chorales", 1), ("essen", 3), ("oneills", 5), ("ryans", 7)]


@pytest.mark.parametrize(("collection", "index"), CORPUS_UNITS)
def test_real_pieces_round_trip(collection, index) -> None:
    from training.corpus import extract, list_units

    unit = list_units([collection], limit=index + 1)[index]
    piece = extract(unit)
    tokens = piece.tokens()
    notes, bars = tk.decode(tokens, start=tk.normalize(piece.melody)[0].onset)
    assert notes == tk.normalize(piece.melody)
    assert tk.encode(notes, bars) == tokens
    assert len(notes) >= 4
    if collection == "chorales":
        assert piece.roll and all(all(0 <= k < tk.ROLL_KEYS for k in f) for f in piece.roll)
        assert piece.chords is not None and any(piece.chords)
        bars_out = list(piece.gan_bars())
        assert bars_out and all(len(b[1]) == 16 and len(b[2]) == 16 for b in bars_out)
