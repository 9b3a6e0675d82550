"""Sampling from the trained models (used by the evaluation and by the node)."""

from __future__ import annotations

import torch

from training.models import MelodyLSTM
from training.tokenize import BAR, BOS, DUR0, EOS, NOTE0, PAD, REST, VOCAB_SIZE


def _grammar_masks() -> tuple[torch.Tensor, torch.Tensor]:
    after_event = torch.full((VOCAB_SIZE,), float("-inf"))
    after_event[DUR0:] = 0.0  # a pitch or rest is followed by its duration
    after_duration = torch.full((VOCAB_SIZE,), float("-inf"))
    after_duration[NOTE0:DUR0] = 0.0
    after_duration[[REST, BAR, EOS]] = 0.0
    return after_event, after_duration


_AFTER_EVENT, _AFTER_DURATION = _grammar_masks()


def continue_melody(
    model: MelodyLSTM,
    seed: list[int],
    notes: int,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Tokens that continue ``seed`` (which starts with BOS) by up to ``notes`` events.

    Sampling follows the token grammar (every pitch or rest gets a duration), so the
    continuation always decodes; it stops early when the model ends the piece.
    """
    if not seed or seed[0] != BOS:
        raise ValueError("a seed starts with BOS")
    model.eval()
    out: list[int] = []
    with torch.no_grad():
        logits, state = model(torch.tensor([seed], dtype=torch.long))
        last = logits[0, -1]
        previous = seed[-1]
        events = 0
        while events < notes:
            expects_duration = NOTE0 <= previous < DUR0 or previous == REST
            masked = last / max(temperature, 1e-3) + (
                _AFTER_EVENT if expects_duration else _AFTER_DURATION
            )
            masked[PAD] = float("-inf")
            masked[BOS] = float("-inf")
            if top_k:
                threshold = torch.topk(masked, min(top_k, VOCAB_SIZE)).values[-1]
                masked = torch.where(masked < threshold, float("-inf"), masked)
            token = int(torch.multinomial(torch.softmax(masked, -1), 1, generator=generator))
            if token == EOS:
                break
            out.append(token)
            if token >= DUR0:
                events += 1
            previous = token
            logits, state = model(torch.tensor([[token]], dtype=torch.long), state)
            last = logits[0, -1]
    return out
