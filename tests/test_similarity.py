"""The similarity check on real corpus tunes and on audio rendered by the node's synthesizer."""

from __future__ import annotations

from random import Random

from node.ai.synth import render
from node.similarity import (
    FLAG_SPAN_NOTES,
    GATE_SPAN_NOTES,
    MelodyIndex,
    intervals,
    synthetic_melodies,
    transcribe,
)
from training.corpus import PieceError, extract, list_units


def _tunes(count: int) -> list[list[int]]:
    out = []
    for unit in list_units(["oneills"], count + 5):
        try:
            piece = extract(unit)
        except PieceError:
            continue
        out.append([n.pitch for n in piece.melody if n.pitch is not None])
    return out[:count]


def test_a_transposed_rerhythmed_excerpt_is_found_with_its_span() -> None:
    tunes = _tunes(40)
    index = MelodyIndex()
    for work, tune in enumerate(tunes):
        index.add(work, tune)
    source = tunes[17]
    # 30 notes of tune 17, a fourth up, each note repeated (a new rhythm), inside new material.
    excerpt = [p + 5 for p in source[10:40] for _ in (0, 1)]
    filler = synthetic_melodies(2, Random(7), length=20)
    query = filler[0] + excerpt + filler[1]
    best = index.query(query)[0]
    assert best.work == 17
    assert best.span_notes >= len(intervals(source[10:40]))  # the whole copied stretch
    assert best.flagged and best.gated
    assert tunes[17][best.work_start : best.work_start + 3]  # positions point into the work
    # A different tune of the collection shares only formulas with it.
    others = index.query(tunes[3], exclude=[3])
    assert all(m.span_notes < FLAG_SPAN_NOTES for m in others if m.work != 3)


def test_unrelated_melodies_stay_under_the_flag() -> None:
    rng = Random(1)
    index = MelodyIndex()
    for work, melody in enumerate(synthetic_melodies(200, rng)):
        index.add(work, melody)
    spans = [m.span_notes for q in synthetic_melodies(20, rng) for m in index.query(q)[:1]]
    assert spans and max(spans) < FLAG_SPAN_NOTES <= GATE_SPAN_NOTES


def test_a_melody_played_by_the_synthesizer_is_transcribed_and_matched() -> None:
    tune = _tunes(12)[9][:28]
    rate, beat = 48000, 12000  # 4 notes a second
    notes = [(i * beat, beat - 600, pitch) for i, pitch in enumerate(tune)]
    audio = render(notes, "piano", len(tune) * beat, rate)
    heard = transcribe(audio, rate)
    assert intervals(heard) == intervals(tune)
    index = MelodyIndex()
    for work, other in enumerate(_tunes(12)):
        index.add(work, other)
    assert index.query(heard)[0].work == 9
    assert transcribe(audio[:100] * 0, rate) == []
