"""Turning a training run into a shipped model: inference weights, a model card, a hash.

A shipped model is two files in the models directory: ``NAME.pt`` (a plain state dict with the
model's config, loadable with ``torch.load(weights_only=True)``) and ``NAME.card.json`` (what
data and command made it, its evaluation figures and the SHA-256 of ``NAME.pt``). A readable
``NAME.md`` is written from the card. The node refuses a checkpoint whose hash differs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import torch

from training import data
from training.evaluate import evaluate_chorale, evaluate_composer, evaluate_improviser
from training.models import build
from training.tokenize import TOKENIZER_VERSION
from training.train import RECIPES

# model name → (kind, module saved from the run, what it is for)
SHIPPED: dict[str, tuple[str, str, str]] = {
    "composer": ("composer", "model", "continues a seed melody (LSTM over melody events)"),
    "chorale": ("chorale", "model", "four-part chorale frames (LSTM, 88-key Bernoulli output)"),
    "improviser": (
        "improviser",
        "generator",
        "one bar of 16 steps over a chord and the previous bar (MidiNet-style GAN generator)",
    ),
}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_run(run_dir: Path, module: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The best model of a training run, and the run's checkpoint payload."""
    path = run_dir / "best.pt"
    if not path.is_file():
        raise data.DataError(f"{path} is missing: train first (`jamnet train fit ...`)")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    kind = payload["kind"]
    kind = "improviser" if module == "generator" else kind
    model = build(kind, payload["configs"][module])
    model.load_state_dict(payload["modules"][module])
    model.eval()
    return model, payload


def evaluate(name: str, model: torch.nn.Module, corpus: Path, limit: int | None) -> dict[str, Any]:
    """The evaluation of one model kind on the corpus's test split."""
    if name == "composer":
        return evaluate_composer(model, corpus, limit)  # type: ignore[arg-type]
    if name == "chorale":
        return evaluate_chorale(model, corpus, limit)  # type: ignore[arg-type]
    return evaluate_improviser(model, corpus, limit)  # type: ignore[arg-type]


def ship(
    name: str,
    run_dir: Path,
    corpus: Path,
    models_dir: Path,
    command: str,
    limit: int | None = None,
    summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate the run's best model, write NAME.pt, NAME.card.json and NAME.md."""
    kind, module, purpose = SHIPPED[name]
    model, payload = load_run(run_dir, module)
    metrics = evaluate(name, model, corpus, limit)
    models_dir.mkdir(parents=True, exist_ok=True)
    weights = models_dir / f"{name}.pt"
    tmp = weights.with_suffix(".tmp")
    torch.save(
        {
            "kind": kind,
            "config": dict(payload["configs"][module]),
            "state_dict": model.state_dict(),
        },
        tmp,
    )
    tmp.replace(weights)
    manifest = data.manifest(corpus)
    card = {
        "name": name,
        "kind": kind,
        "purpose": purpose,
        "file": weights.name,
        "sha256": sha256_file(weights),
        "bytes": weights.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": payload["configs"][module],
        "tokenizer_version": TOKENIZER_VERSION,
        "data": {
            "source": "music21's bundled corpus",
            "collections": manifest["collections"],
            "limit_per_collection": manifest.get("limit_per_collection"),
            "rows": manifest["rows"],
            "corpus_hash": manifest["hash"],
            "split": "80/10/10 by a SHA-256 of the piece id",
        },
        "training": {
            "epochs_run": _epochs_run(run_dir, payload),
            "best_epoch": payload["best_epoch"],
            "history": payload["history"],
            "config": payload["train_config"],
            "summary": summary or {},
        },
        "metrics": metrics,
        "command": command,
        "reproduce": f"jamnet train all --models {name}  (recipe {json.dumps(RECIPES[name])}, "
        f"seed {payload['train_config']['seed']}; bit-exact only on the same torch build and "
        "thread count)",
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, torch {torch.__version__}",
    }
    (models_dir / f"{name}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    (models_dir / f"{name}.md").write_text(render_card(card))
    return card


def _epochs_run(run_dir: Path, payload: dict[str, Any]) -> int:
    last = run_dir / "last.pt"
    if last.is_file():
        return int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
    return int(payload["epoch"])


def render_card(card: dict[str, Any]) -> str:
    """A readable model card from the JSON card."""
    lines = [
        f"# {card['name']}",
        "",
        f"{card['purpose'][0].upper()}{card['purpose'][1:]}.",
        "",
        f"- file: `{card['file']}` ({card['bytes']} bytes, {card['parameters']} parameters)",
        f"- sha256: `{card['sha256']}`",
        f"- data: {card['data']['source']}: {', '.join(card['data']['collections'])}; "
        f"split {card['data']['split']}; corpus hash `{card['data']['corpus_hash'][:16]}…`",
        f"- rows: `{json.dumps(card['data']['rows'])}`",
        f"- made by: `{card['command']}` on {card['machine']}, {card['created']}",
        f"- reproduce: `{card['reproduce']}`",
        f"- training: best epoch {card['training']['best_epoch']} "
        f"of {card['training']['epochs_run']}",
        "",
        "## Evaluation (test split)",
        "",
        "```json",
        json.dumps(card["metrics"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
