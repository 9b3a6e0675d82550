"""The shipped models: each checkpoint is checked against its card's SHA-256 before loading.

A model is ``NAME.pt`` beside ``NAME.card.json`` (see training/ship.py). Loading reads the
card, hashes the file, refuses a mismatch, then loads the weights with
``torch.load(weights_only=True)`` (plain tensors: no code in a checkpoint runs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from node.errors import JamnetError

BUNDLED_DIR = Path(__file__).resolve().parent / "models"


class ModelError(JamnetError, ValueError):
    """A model is missing, does not match its card, or cannot be loaded."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelRegistry:
    """The models in one directory (the bundled ones by default)."""

    def __init__(self, directory: Path = BUNDLED_DIR) -> None:
        self.directory = directory

    def cards(self) -> dict[str, dict[str, Any]]:
        """Every model card in the directory, by name."""
        cards = {}
        for path in sorted(self.directory.glob("*.card.json")):
            try:
                card = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ModelError(f"{path}: unreadable model card ({exc})") from exc
            cards[path.name.removesuffix(".card.json")] = card
        return cards

    def card(self, name: str) -> dict[str, Any]:
        """One model's card."""
        path = self.directory / f"{name}.card.json"
        if not path.is_file():
            raise ModelError(
                f"no model {name!r} in {self.directory} (no {path.name}); "
                "`jamnet train all` makes the shipped models"
            )
        try:
            card: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path}: unreadable model card ({exc})") from exc
        for key in ("file", "sha256", "kind"):
            if not isinstance(card.get(key), str):
                raise ModelError(f"{path}: the card has no {key!r}")
        return card

    def verified_path(self, name: str) -> Path:
        """The checkpoint's path, after checking its SHA-256 against the card."""
        card = self.card(name)
        path = self.directory / Path(card["file"]).name
        if not path.is_file():
            raise ModelError(f"model {name!r}: {path} is missing")
        actual = _sha256(path)
        if actual != card["sha256"].lower():
            raise ModelError(
                f"model {name!r}: {path.name} has SHA-256 {actual[:16]}…, its card says "
                f"{card['sha256'][:16]}… — refusing to load a checkpoint that is not the one "
                "described (re-download it or run `jamnet train all`)"
            )
        return path

    def load(self, name: str) -> Any:
        """The verified model, built and in eval mode (blocking: call off the event loop)."""
        import torch

        from training.models import build

        path = self.verified_path(name)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            model = build(payload["kind"], payload["config"])
            model.load_state_dict(payload["state_dict"])
        except Exception as exc:
            raise ModelError(f"model {name!r}: {path.name} cannot be loaded ({exc})") from exc
        model.eval()
        return model
