"""The networks: an LSTM composer, an LSTM chorale model, and a MidiNet-style bar GAN.

Each model keeps its hyper-parameters in ``config`` so a checkpoint can rebuild it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the PyTorch convention

from training.tokenize import BAR_STEPS, N_CHORDS, PAD, ROLL_KEYS, STEP_CLASSES, VOCAB_SIZE


class MelodyLSTM(nn.Module):
    """Next-event model over melody tokens."""

    def __init__(
        self,
        vocab: int = VOCAB_SIZE,
        embed: int = 96,
        hidden: int = 320,
        layers: int = 2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "vocab": vocab,
            "embed": embed,
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
        }
        self.embed = nn.Embedding(vocab, embed, padding_idx=PAD)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab)

    def forward(
        self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits for the next token at every position, and the LSTM state."""
        out, state = self.lstm(self.embed(tokens), state)
        return self.head(self.drop(out)), state


class ChoraleLSTM(nn.Module):
    """Frame model: P(frame t | frames < t) as 88 independent Bernoullis from an LSTM state."""

    def __init__(
        self, keys: int = ROLL_KEYS, hidden: int = 256, layers: int = 2, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "keys": keys,
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
        }
        self.inp = nn.Linear(keys, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, keys)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Logits for frame t+1 given frames ≤ t; ``frames`` is (batch, time, keys)."""
        out, _ = self.lstm(torch.relu(self.inp(frames)))
        logits: torch.Tensor = self.head(self.drop(out))
        return logits


def one_hot_bar(steps: torch.Tensor) -> torch.Tensor:
    """(batch, 16) step classes → (batch, 16, STEP_CLASSES)."""
    return F.one_hot(steps, STEP_CLASSES).float()


class _Conditioner(nn.Module):
    """Encodes (chord per step, previous bar) into a per-step condition (MidiNet's 2-D CNN,
    here 1-D over the 16 steps)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.chord = nn.Embedding(N_CHORDS, 32)
        self.prev = nn.Sequential(
            nn.Conv1d(STEP_CLASSES, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(width, width, 3, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.width = width + 32

    def forward(self, chords: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """(batch, 16, width + 32)."""
        prev_features = self.prev(prev.transpose(1, 2)).transpose(1, 2)
        return torch.cat([self.chord(chords), prev_features], dim=2)


class BarGenerator(nn.Module):
    """One bar of 16 steps from noise, the chords under it and the previous bar."""

    def __init__(self, noise: int = 32, width: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.config: dict[str, Any] = {"noise": noise, "width": width, "hidden": hidden}
        self.noise = noise
        self.cond = _Conditioner(width)
        self.project = nn.Linear(noise, BAR_STEPS * 16)
        self.body = nn.GRU(self.cond.width + 16, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, STEP_CLASSES)
        )

    def forward(self, z: torch.Tensor, chords: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Step-class logits (batch, 16, STEP_CLASSES); ``prev`` is one-hot."""
        noise = self.project(z).view(z.shape[0], BAR_STEPS, 16)
        out, _ = self.body(torch.cat([self.cond(chords, prev), noise], dim=2))
        logits: torch.Tensor = self.head(out)
        return logits


class BarDiscriminator(nn.Module):
    """Real or generated, given the same chords and previous bar; also returns features."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.config: dict[str, Any] = {"width": width}
        self.cond = _Conditioner(width)
        # Dilated convolutions: the last layer sees the whole bar, so melodic motion between
        # notes a beat or two apart (not just neighbouring steps) shapes the verdict.
        self.body = nn.Sequential(
            nn.Conv1d(STEP_CLASSES + self.cond.width, 2 * width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 2 * width, 3, padding=2, dilation=2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(2 * width, 2 * width, 3, padding=4, dilation=4, stride=2),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(2 * width * (BAR_STEPS // 2), 1)

    def forward(
        self, bar: torch.Tensor, chords: torch.Tensor, prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logit (batch,), features (batch, n)) for a one-hot (or relaxed) ``bar``."""
        x = torch.cat([bar, self.cond(chords, prev)], dim=2).transpose(1, 2)
        features = self.body(x).flatten(1)
        return self.head(features).squeeze(1), features


def build(kind: str, config: dict[str, Any]) -> nn.Module:
    """A model of ``kind`` from its saved config."""
    classes: dict[str, type[nn.Module]] = {
        "composer": MelodyLSTM,
        "chorale": ChoraleLSTM,
        "improviser": BarGenerator,
        "discriminator": BarDiscriminator,
    }
    if kind not in classes:
        raise ValueError(f"unknown model kind {kind!r}")
    return classes[kind](**config)
