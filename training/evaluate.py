"""Held-out evaluation of the trained models against the n-gram and uniform baselines.

Composer: test-set negative log-likelihood per token and perplexity, next to the best n-gram
(order chosen on the validation split) and a uniform model over the vocabulary; and the
longest run of notes its continuations copy from the training melodies.
Chorale model: test-set frame NLL (sum over the 88 keys, mean over frames).
Improviser: bars generated over the test set's chords and previous bars, compared with the
real test bars, with bars sampled from a step-level n-gram and with uniform random bars.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import torch

from training import data
from training.generate import continue_melody
from training.metrics import CopyIndex, bar_statistics, chord_tone_ratio, note_sequence
from training.models import BarGenerator, ChoraleLSTM, MelodyLSTM
from training.ngram import best_order
from training.tokenize import BAR_STEPS, BOS, STEP_CLASSES, VOCAB_SIZE, decode
from training.train import chorale_nll, composer_nll, generate_bars

SEED_TOKENS = 24
CONTINUATION_NOTES = 32
COPY_SAMPLES = 50


def _melody_notes(tokens: list[int]) -> list[tuple[int | None, int]]:
    notes, _ = decode(tokens)
    return [(n.pitch, n.duration) for n in notes]


def evaluate_composer(model: MelodyLSTM, corpus: Path, limit: int | None = None) -> dict[str, Any]:
    """Test perplexity of the LSTM, the best n-gram and uniform; memorisation of samples."""
    train = data.melodies(corpus, "train", limit)
    valid = data.melodies(corpus, "valid", limit)
    test = data.melodies(corpus, "test", limit)
    total, count = composer_nll(model, test)
    lstm_nll = total / count
    ngram, by_order = best_order(train, valid, VOCAB_SIZE, start=BOS)
    ngram_total, ngram_count = ngram.nll(test)
    ngram_nll = ngram_total / ngram_count
    uniform_nll = math.log(VOCAB_SIZE - 1)  # every token but PAD
    index = CopyIndex(_melody_notes(seq) for seq in train)
    generator = torch.Generator().manual_seed(7)
    copies = []
    for seq in test[:COPY_SAMPLES]:
        seed = seq[:SEED_TOKENS]
        tokens = continue_melody(model, seed, CONTINUATION_NOTES, generator=generator)
        notes, _ = decode([BOS, *tokens])
        copies.append(index.longest_copy([(n.pitch, n.duration) for n in notes]))
    return {
        "test_tokens": count,
        "lstm_nll": round(lstm_nll, 4),
        "lstm_ppl": round(math.exp(lstm_nll), 3),
        "ngram_order": ngram.order,
        "ngram_valid_nll_by_order": {k: round(v, 4) for k, v in by_order.items()},
        "ngram_nll": round(ngram_nll, 4),
        "ngram_ppl": round(math.exp(ngram_nll), 3),
        "uniform_ppl": round(math.exp(uniform_nll), 3),
        "lstm_vs_ngram_ppl": round(math.exp(lstm_nll) / math.exp(ngram_nll), 4),
        "copy_longest_notes_median": sorted(copies)[len(copies) // 2] if copies else 0,
        "copy_longest_notes_max": max(copies, default=0),
        "copy_continuation_notes": CONTINUATION_NOTES,
    }


def evaluate_chorale(model: ChoraleLSTM, corpus: Path, limit: int | None = None) -> dict[str, Any]:
    """Test frame NLL of the chorale model."""
    rolls = data.chorale_rolls(corpus, "test", limit)
    total, count = chorale_nll(model, rolls)
    return {"test_frames": count, "chorale_frame_nll": round(total / count, 4)}


def _phrases(
    generator_fn: Any, chords: torch.Tensor, starts: torch.Tensor, length: int
) -> list[Any]:
    """Chain ``length`` generated bars per row, each conditioned on the one before."""
    prev = starts
    out = []
    for bar in range(length):
        steps = generator_fn(chords[:, bar], prev)
        out.append(steps)
        prev = steps
    return torch.stack(out, 1).tolist()


def evaluate_improviser(
    generator: BarGenerator, corpus: Path, limit: int | None = None, seed: int = 11
) -> dict[str, Any]:
    """Statistics of GAN, n-gram and uniform bars against real test bars."""
    train = data.bars(corpus, "train", limit)
    valid = data.bars(corpus, "valid", limit)
    test = data.bars(corpus, "test", limit)
    chords, real = test.chords.tolist(), test.steps.tolist()
    reference = train.steps.tolist()
    gan = generate_bars(generator, test.chords, test.prev, seed=seed).tolist()

    # Baseline: a step-class n-gram over bars (not chord-aware), order chosen on valid.
    ngram, _ = best_order(
        [[STEP_CLASSES, *s] for s in reference],
        [[STEP_CLASSES, *s] for s in valid.steps.tolist()],
        STEP_CLASSES + 1,
        orders=(1, 2, 3, 4),
        start=STEP_CLASSES,
    )
    rng = random.Random(seed)
    ngram_bars = []
    for _ in real:
        seq = [STEP_CLASSES]
        for _ in range(BAR_STEPS):
            seq.append(ngram.sample(seq, rng, range(STEP_CLASSES)))
        ngram_bars.append(seq[1:])
    uniform_bars = [[rng.randrange(STEP_CLASSES) for _ in range(BAR_STEPS)] for _ in real]

    # Memorisation: 4-bar phrases over real test progressions, chained on the GAN's own bars.
    pieces: dict[str, list[list[int]]] = {}
    for piece, steps in zip(train.pieces, reference, strict=True):
        pieces.setdefault(piece, []).append(steps)
    index = CopyIndex(note_sequence(bars) for bars in pieces.values())
    phrase_rows = min(COPY_SAMPLES, len(test) // 4)
    copies = []
    if phrase_rows:
        four = test.chords[: phrase_rows * 4].reshape(phrase_rows, 4, BAR_STEPS)
        phrases = _phrases(
            lambda c, p: generate_bars(generator, c, p, seed=seed),
            four,
            test.prev[: phrase_rows * 4 : 4],
            4,
        )
        copies = [index.longest_copy(note_sequence(p)) for p in phrases]
    return {
        "test_bars": len(real),
        "real": bar_statistics(real, chords, reference),
        "gan": bar_statistics(gan, chords, real),
        "ngram": bar_statistics(ngram_bars, chords, real),
        "uniform": bar_statistics(uniform_bars, chords, real),
        "real_chord_tone_ratio": round(chord_tone_ratio(real, chords), 4),
        "ngram_step_order": ngram.order,
        "gan_copy_longest_notes_median": sorted(copies)[len(copies) // 2] if copies else 0,
        "gan_copy_longest_notes_max": max(copies, default=0),
    }
