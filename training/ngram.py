"""The n-gram Markov baseline: interpolated absolute discounting down to a uniform floor."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

DISCOUNT = 0.75


class NgramModel:
    """An order-``order`` model over integers 0..vocab-1 (order 1 is a unigram)."""

    def __init__(self, order: int, vocab: int, start: int | None = None) -> None:
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order = order
        self.vocab = vocab
        self.start = start
        """Token that pads contexts before the first position (None: shorter contexts)."""
        # counts[k][context of length k] = Counter of next tokens
        self.counts: list[defaultdict[tuple[int, ...], Counter[int]]] = [
            defaultdict(Counter) for _ in range(order)
        ]

    def fit(self, sequences: Sequence[Sequence[int]]) -> NgramModel:
        """Count every n-gram up to ``order`` in ``sequences`` (each predicts from index 1)."""
        for seq in sequences:
            for i in range(1, len(seq)):
                for k in range(self.order):
                    context = self._context(seq, i, k)
                    if context is None:
                        break
                    self.counts[k][context][seq[i]] += 1
        return self

    def _context(self, seq: Sequence[int], i: int, k: int) -> tuple[int, ...] | None:
        if k == 0:
            return ()
        if i - k >= 0:
            return tuple(seq[i - k : i])
        if self.start is None:
            return None
        return (self.start,) * (k - i) + tuple(seq[:i])

    def prob(self, seq: Sequence[int], i: int, token: int) -> float:
        """P(seq[i] = token | seq[:i])."""
        p = 1.0 / self.vocab
        for k in range(self.order):
            context = self._context(seq, i, k)
            if context is None:
                break
            counter = self.counts[k].get(context)
            if not counter:
                continue
            total = sum(counter.values())
            seen = len(counter)
            p = max(counter.get(token, 0) - DISCOUNT, 0.0) / total + DISCOUNT * seen / total * p
        return p

    def nll(self, sequences: Sequence[Sequence[int]]) -> tuple[float, int]:
        """(sum of -log p over predicted tokens, number of predicted tokens)."""
        total = 0.0
        count = 0
        for seq in sequences:
            for i in range(1, len(seq)):
                total -= math.log(self.prob(seq, i, seq[i]))
                count += 1
        return total, count

    def sample(self, prefix: Sequence[int], rng: random.Random, allowed: range) -> int:
        """Draw the next token after ``prefix`` from ``allowed``."""
        seq = [*prefix, 0]
        weights = [self.prob(seq, len(prefix), token) for token in allowed]
        return rng.choices(list(allowed), weights=weights)[0]


def best_order(
    train: Sequence[Sequence[int]],
    valid: Sequence[Sequence[int]],
    vocab: int,
    orders: Sequence[int] = tuple(range(1, 13)),
    start: int | None = None,
) -> tuple[NgramModel, dict[int, float]]:
    """The order with the lowest validation NLL per token, and every order's figure tried.

    Orders are tried in turn until two in a row do worse than the best so far.
    """
    scores: dict[int, float] = {}
    best: NgramModel | None = None
    worse = 0
    for order in orders:
        model = NgramModel(order, vocab, start).fit(train)
        total, count = model.nll(valid)
        scores[order] = total / max(count, 1)
        if best is None or scores[order] < scores[best.order]:
            best, worse = model, 0
        else:
            worse += 1
            if worse == 2:
                break
    assert best is not None
    return best, scores
