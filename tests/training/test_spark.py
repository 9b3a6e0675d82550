"""The Spark jobs on local[2]: preprocessing writes the expected rows; TorchDistributor trains."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spark_jobs.preprocess import process, run, split_of
from training import data
from training.corpus import Unit
from training.tokenize import decode, normalize
from training.train import train

pytestmark = pytest.mark.slow
LIMIT = 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark") / "corpus"
    run(out, ["chorales", "essen", "oneills", "ryans"], LIMIT, "local[2]")
    return out


def test_preprocess_writes_the_expected_rows(corpus: Path) -> None:
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["pieces"] == 4 * LIMIT
    assert sum(manifest["parsed"].values()) + sum(manifest["failed"].values()) == 4 * LIMIT
    melodies = pq.read_table(corpus / "melodies").to_pylist()
    assert len(melodies) == sum(manifest["parsed"].values()) - manifest["duplicates_dropped"]
    assert sum(manifest["rows"]["melodies"].values()) == len(melodies)
    assert len({row["piece_id"] for row in melodies}) == len(melodies)
    for row in melodies:
        assert row["split"] == split_of(row["piece_id"])  # deterministic by piece id
        notes, _ = decode(row["tokens"])
        assert len(notes) >= 4 and normalize(notes) == notes
    chorales = pq.read_table(corpus / "chorales").to_pylist()
    assert {r["piece_id"] for r in chorales} == {
        r["piece_id"] for r in melodies if r["collection"] == "chorales"
    }
    assert all(len(r["frames"]) == len(r["romans"]) > 8 for r in chorales)
    bars = pq.read_table(corpus / "bars").to_pylist()
    assert bars and all(len(b["steps"]) == len(b["chords"]) == 16 for b in bars)
    # Each file is what the manifest hashed.
    from training.ship import sha256_file

    for name, digest in manifest["files"].items():
        assert sha256_file(corpus / name) == digest
    assert not corpus.with_name("corpus.partial").exists()


def test_a_piece_that_does_not_parse_is_counted_not_fatal() -> None:
    row = process(Unit("essen/broken#1", "essen", "X:1\nK:Zz\n|:::(((", is_abc=True))
    assert row["ok"] is False and row["error"].startswith("essen/broken#1")
    row = process(Unit("essen/empty#2", "essen", "X:2\nT:none\nK:C\n", is_abc=True))
    assert row["ok"] is False


def test_a_tiny_composer_learns(corpus: Path, tmp_path: Path) -> None:
    summary = train(
        {
            "model": "composer",
            "corpus": str(corpus),
            "out": str(tmp_path),
            "epochs": 4,
            "batch_size": 4,
            "patience": 4,
            "quiet": True,
            "model_args": {"embed": 32, "hidden": 64, "layers": 1, "dropout": 0.0},
        }
    )
    history = [h["valid_nll"] for h in _history(tmp_path)]
    assert history[-1] < history[0]
    assert summary["epochs"] == 4 and summary["train_tokens"] > 0
    # Resuming goes on from the saved epoch instead of starting over.
    again = train(
        {
            "model": "composer",
            "corpus": str(corpus),
            "out": str(tmp_path),
            "epochs": 5,
            "batch_size": 4,
            "patience": 5,
            "resume": True,
            "quiet": True,
            "model_args": {"embed": 32, "hidden": 64, "layers": 1, "dropout": 0.0},
        }
    )
    assert again["epochs"] == 5 and len(_history(tmp_path)) == 5


def test_tiny_chorale_and_improviser_runs(corpus: Path, tmp_path: Path) -> None:
    chorale = train(
        {
            "model": "chorale",
            "corpus": str(corpus),
            "out": str(tmp_path / "c"),
            "epochs": 3,
            "batch_size": 2,
            "quiet": True,
            "patience": 3,
        }
    )
    nll = [h["valid_frame_nll"] for h in _history(tmp_path / "c")]
    assert nll[-1] < nll[0] and chorale["epochs"] == 3
    gan = train(
        {
            "model": "improviser",
            "corpus": str(corpus),
            "out": str(tmp_path / "g"),
            "epochs": 2,
            "batch_size": 8,
            "quiet": True,
            "patience": 3,
        }
    )
    assert gan["epochs"] == 2 and (tmp_path / "g" / "best.pt").is_file()


# pyspark's distributor.py leaves the torchrun output pipe for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_torch_distributor_trains_in_local_mode(corpus: Path, tmp_path: Path) -> None:
    from spark_jobs.train import distributed

    values = {
        "model": "composer",
        "corpus": str(corpus),
        "out": str(tmp_path),
        "epochs": 1,
        "batch_size": 2,
        "max_batches": 3,
        "quiet": True,
        "model_args": {"embed": 16, "hidden": 32, "layers": 1, "dropout": 0.0},
    }
    summary = distributed(values, processes=2, master="local[2]")
    assert summary["processes"] == 2 and summary["epochs"] == 1
    assert summary["train_tokens"] > 0 and (tmp_path / "best.pt").is_file()


def test_training_without_a_corpus_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="jamnet train preprocess"):
        train({"model": "composer", "corpus": str(tmp_path / "none"), "out": str(tmp_path)})
    with pytest.raises(ValueError, match="unknown training options: colour"):
        train({"model": "composer", "corpus": "x", "out": "y", "colour": 1})


def _history(run_dir: Path) -> list[dict[str, float]]:
    import torch

    return torch.load(run_dir / "last.pt", weights_only=False)["history"]
