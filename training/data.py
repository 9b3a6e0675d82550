"""Reading the preprocessed Parquet tables into tensors and batches."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training.tokenize import BAR_STEPS, PAD, ROLL_KEYS


class DataError(ValueError):
    """The corpus directory is missing or not what the trainer expects."""


def read_table(corpus: Path, name: str, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of one table (``split``: only that split), in stored order."""
    import pyarrow.parquet as pq

    directory = corpus / name
    if not (corpus / "manifest.json").is_file() or not directory.is_dir():
        raise DataError(
            f"{corpus} is not a preprocessed corpus (no manifest.json or {name}/): "
            "run `jamnet train preprocess` first"
        )
    files = sorted(directory.glob("*.parquet"))
    rows: list[dict[str, Any]] = []
    for path in files:
        rows.extend(pq.read_table(path).to_pylist())
    if split is not None:
        rows = [row for row in rows if row["split"] == split]
    return rows


def manifest(corpus: Path) -> dict[str, Any]:
    """The corpus manifest written by the preprocessing job."""
    path = corpus / "manifest.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: run `jamnet train preprocess` first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def melodies(corpus: Path, split: str, limit: int | None = None) -> list[list[int]]:
    """Token sequences of one split."""
    rows = read_table(corpus, "melodies", split)
    return [list(row["tokens"]) for row in rows[:limit]]


def token_windows(sequences: list[list[int]], length: int) -> list[list[int]]:
    """Cut sequences into windows of ``length`` + 1 tokens (inputs and shifted targets)."""
    windows = []
    for seq in sequences:
        step = length
        for start in range(0, max(len(seq) - 1, 1), step):
            window = seq[start : start + length + 1]
            if len(window) >= 2:
                windows.append(window)
    return windows


def pad_batch(windows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), padded with PAD (targets PAD are ignored by the loss)."""
    width = max(len(w) for w in windows) - 1
    inputs = torch.full((len(windows), width), PAD, dtype=torch.long)
    targets = torch.full((len(windows), width), PAD, dtype=torch.long)
    for row, window in enumerate(windows):
        seq = torch.tensor(window, dtype=torch.long)
        inputs[row, : len(window) - 1] = seq[:-1]
        targets[row, : len(window) - 1] = seq[1:]
    return inputs, targets


def chorale_rolls(corpus: Path, split: str, limit: int | None = None) -> list[torch.Tensor]:
    """One (frames, 88) float tensor per chorale."""
    rows = read_table(corpus, "chorales", split)[:limit]
    rolls = []
    for row in rows:
        roll = torch.zeros(len(row["frames"]), ROLL_KEYS)
        for t, keys in enumerate(row["frames"]):
            if keys:
                roll[t, list(keys)] = 1.0
        rolls.append(roll)
    return rolls


@dataclass
class Bars:
    """Improviser training data: steps, chords and previous bars, all (n, 16) long."""

    steps: torch.Tensor
    chords: torch.Tensor
    prev: torch.Tensor
    pieces: list[str]

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    def subset(self, index: torch.Tensor | slice) -> Bars:
        """The rows at ``index``."""
        if isinstance(index, slice):
            pieces = self.pieces[index]
        else:
            pieces = [self.pieces[i] for i in index.tolist()]
        return Bars(self.steps[index], self.chords[index], self.prev[index], pieces)


def bars(corpus: Path, split: str, limit: int | None = None) -> Bars:
    """The bars of one split (``limit``: from at most that many pieces)."""
    rows = read_table(corpus, "bars", split)
    if limit is not None:
        keep = sorted({row["piece_id"] for row in rows})[:limit]
        rows = [row for row in rows if row["piece_id"] in set(keep)]
    if not rows:
        empty = torch.zeros((0, BAR_STEPS), dtype=torch.long)
        return Bars(empty, empty.clone(), empty.clone(), [])
    return Bars(
        torch.tensor([row["steps"] for row in rows], dtype=torch.long),
        torch.tensor([row["chords"] for row in rows], dtype=torch.long),
        torch.tensor([row["prev_steps"] for row in rows], dtype=torch.long),
        [row["piece_id"] for row in rows],
    )


def shuffled(items: list[Any], seed: int) -> list[Any]:
    """A copy of ``items`` in a seeded order."""
    out = list(items)
    random.Random(seed).shuffle(out)
    return out
