"""Shipped checkpoints load only when they match their model cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from node.ai.registry import BUNDLED_DIR, ModelError, ModelRegistry

SHIPPED = ("composer", "chorale", "improviser")


def test_every_shipped_model_has_a_card_that_matches() -> None:
    registry = ModelRegistry()
    cards = registry.cards()
    assert set(cards) == set(SHIPPED)
    total = 0
    for name in SHIPPED:
        card = cards[name]
        for field in ("sha256", "command", "metrics", "data", "file"):
            assert card[field], f"{name} card lacks {field}"
        assert card["command"].startswith("jamnet train")
        path = registry.verified_path(name)
        total += path.stat().st_size
        model = registry.load(name)
        assert sum(p.numel() for p in model.parameters()) == card["parameters"]
        assert (BUNDLED_DIR / f"{name}.md").is_file()
    assert total <= 20 * 1024 * 1024


@pytest.fixture
def copy_of_models(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(BUNDLED_DIR, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def test_a_checkpoint_with_a_wrong_hash_is_refused(copy_of_models: Path) -> None:
    weights = copy_of_models / "improviser.pt"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the tensors
    weights.write_bytes(bytes(data))
    registry = ModelRegistry(copy_of_models)
    with pytest.raises(ModelError, match="refusing to load"):
        registry.load("improviser")
    registry.load("composer")  # the others are still fine


def test_missing_or_broken_cards_are_clear_errors(copy_of_models: Path) -> None:
    registry = ModelRegistry(copy_of_models)
    with pytest.raises(ModelError, match="no model 'drummer'"):
        registry.load("drummer")
    (copy_of_models / "composer.card.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable model card"):
        registry.load("composer")
    card = json.loads((copy_of_models / "chorale.card.json").read_text())
    del card["sha256"]
    (copy_of_models / "chorale.card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="no 'sha256'"):
        registry.load("chorale")
    (copy_of_models / "improviser.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        registry.load("improviser")
