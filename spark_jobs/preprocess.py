"""Corpus preprocessing on Spark: music21 scores → token tables in Parquet, with a manifest.

    python -m spark_jobs.preprocess --out data/corpus [--collections chorales essen ...]
        [--limit N] [--master local[*]]

Pieces are parsed in parallel on the workers. A piece that fails to parse is counted (per
collection, with a few example messages in the manifest) and skipped. Duplicate tunes (the
same pitches and durations) are kept once, under the smallest piece id. Splits are decided by
a hash of the piece id, so they do not change when the corpus or the cluster does.

Tables (Parquet, one directory each):
- ``melodies``: piece_id, collection, split, tokens (event tokens, see training.tokenize);
- ``chorales``: piece_id, split, frames (per quarter note: sounding piano keys 0..87),
  romans (Roman numeral per quarter note);
- ``bars``: piece_id, split, bar, steps, chords, prev_steps (one bar of 16 steps with the
  chord under every step, for the improviser).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from spark_jobs.spark import progress, spark_session
from training.corpus import COLLECTIONS, PieceError, Unit, extract, list_units
from training.tokenize import TOKENIZER_VERSION, VOCAB_SIZE

SPLITS = (("train", 80), ("valid", 90), ("test", 100))
TABLES = ("melodies", "chorales", "bars")
EXAMPLE_FAILURES = 5
PIECE_TIMEOUT_S = 60


def split_of(piece_id: str) -> str:
    """train / valid / test, 80/10/10, from a hash of the piece id."""
    bucket = int.from_bytes(hashlib.sha256(piece_id.encode()).digest()[:4], "big") % 100
    return next(name for name, upper in SPLITS if bucket < upper)


class _PieceTimeoutError(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise _PieceTimeoutError


def process(unit: Unit, timeout_s: int = PIECE_TIMEOUT_S) -> dict[str, Any]:
    """One unit → a row of plain values, or a failure row (runs on a worker)."""
    timed = threading.current_thread() is threading.main_thread()
    if timed:  # a pathological score must not hold a worker for ever
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(timeout_s)
    try:
        piece = extract(unit)
    except _PieceTimeoutError:
        message = f"{unit.piece_id}: gave up after {timeout_s} s"
        return {"ok": False, "collection": unit.collection, "error": message}
    except PieceError as exc:
        return {"ok": False, "collection": unit.collection, "error": str(exc)[:300]}
    except Exception as exc:  # music21 can fail in ways it does not wrap; never kill the job
        message = f"{unit.piece_id}: {type(exc).__name__}: {exc}"
        return {"ok": False, "collection": unit.collection, "error": message[:300]}
    finally:
        if timed:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    return {
        "ok": True,
        "piece_id": piece.piece_id,
        "collection": piece.collection,
        "melody_hash": piece.melody_hash(),
        "tokens": piece.tokens(),
        "time_signature": f"{piece.beats_per_bar}/{piece.beat_unit}",
        "minor": piece.minor,
        "frames": piece.roll,
        "romans": piece.romans,
        "bars": [list(bar) for bar in piece.gan_bars()],
        "has_chords": piece.chords is not None,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(
    out: Path,
    collections: list[str],
    limit: int | None = None,
    master: str = "local[*]",
    partitions: int | None = None,
) -> dict[str, Any]:
    """Preprocess ``collections`` into ``out``; returns the manifest."""
    started = time.monotonic()
    units = list_units(collections, limit)
    if not units:
        raise SystemExit("no pieces to process: check --collections and --limit")
    print(f"preprocess: {len(units)} pieces from {', '.join(collections)}", file=sys.stderr)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with spark_session("jamnet-preprocess", master) as spark:
        from pyspark.sql import Row

        sc = spark.sparkContext
        slices = partitions or max(sc.defaultParallelism * 16, 32)
        rows = sc.parallelize(units, min(slices, len(units))).map(process).cache()
        with progress(spark, "preprocess"):
            outcome = rows.map(lambda r: (r["collection"], r["ok"])).countByValue()
        failures = (
            rows.filter(lambda r: not r["ok"]).map(lambda r: r["error"]).take(EXAMPLE_FAILURES)
        )
        good = rows.filter(lambda r: r["ok"])
        # One copy of each tune: the smallest piece id wins, wherever it sits in the corpus.
        keep = (
            good.map(lambda r: (r["melody_hash"], r["piece_id"]))
            .reduceByKey(min)
            .map(lambda kv: (kv[1], True))
        )
        unique = good.map(lambda r: (r["piece_id"], r)).join(keep).map(lambda kv: kv[1][0])
        unique = unique.map(lambda r: {**r, "split": split_of(r["piece_id"])}).cache()

        melodies = unique.map(
            lambda r: Row(
                piece_id=r["piece_id"],
                collection=r["collection"],
                split=r["split"],
                time_signature=r["time_signature"],
                minor=r["minor"],
                tokens=r["tokens"],
            )
        )
        chorales = unique.filter(lambda r: r["frames"] is not None).map(
            lambda r: Row(
                piece_id=r["piece_id"], split=r["split"], frames=r["frames"], romans=r["romans"]
            )
        )
        bars = unique.flatMap(
            lambda r: [
                Row(
                    piece_id=r["piece_id"],
                    split=r["split"],
                    bar=b[0],
                    steps=b[1],
                    chords=b[2],
                    prev_steps=b[3],
                )
                for b in r["bars"]
            ]
        )
        counts: dict[str, dict[str, int]] = {}
        with progress(spark, "write"):
            for name, rdd in (("melodies", melodies), ("chorales", chorales), ("bars", bars)):
                if rdd.isEmpty():
                    counts[name] = {split: 0 for split, _ in SPLITS}
                    continue
                frame = spark.createDataFrame(rdd).orderBy(
                    "piece_id", *(["bar"] if name == "bars" else [])
                )
                frame.coalesce(1).write.mode("overwrite").parquet(str(staging / name))
                by_split = dict(frame.groupBy("split").count().collect())
                counts[name] = {split: int(by_split.get(split, 0)) for split, _ in SPLITS}
        with_chords = (
            unique.filter(lambda r: r["has_chords"]).map(lambda r: r["collection"]).countByValue()
        )
        parsed = unique.count()
    for name in TABLES:
        (staging / name).mkdir(parents=True, exist_ok=True)
    ok = Counter({c: n for (c, good_row), n in outcome.items() if good_row})
    failed = Counter({c: n for (c, good_row), n in outcome.items() if not good_row})
    files = {
        str(path.relative_to(staging)): _sha256(path) for path in sorted(staging.rglob("*.parquet"))
    }
    manifest = {
        "tokenizer_version": TOKENIZER_VERSION,
        "vocab_size": VOCAB_SIZE,
        "collections": collections,
        "limit_per_collection": limit,
        "pieces": len(units),
        "parsed": dict(ok),
        "failed": dict(failed),
        "failure_examples": failures,
        "duplicates_dropped": sum(ok.values()) - parsed,
        "with_chords": dict(with_chords),
        "rows": counts,
        "files": files,
        "hash": hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest(),
        "master": master,
        "seconds": round(time.monotonic() - started, 1),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)  # readers never see a half-written corpus
    return manifest


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the preprocessing job (also used by ``jamnet train preprocess``)."""
    parser = argparse.ArgumentParser(
        prog="jamnet train preprocess", description="music21 corpus → Parquet token tables"
    )
    parser.add_argument("--out", type=Path, default=Path("data/corpus"), help="output directory")
    parser.add_argument(
        "--collections",
        nargs="+",
        default=list(COLLECTIONS),
        choices=list(COLLECTIONS),
        help="which collections (default: all)",
    )
    parser.add_argument("--limit", type=int, default=None, help="at most N pieces per collection")
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    parser.add_argument("--partitions", type=int, default=None, help="Spark partitions")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise SystemExit("--limit must be at least 1")
    manifest = run(args.out, args.collections, args.limit, args.master, args.partitions)
    summary = {k: manifest[k] for k in ("parsed", "failed", "duplicates_dropped", "rows", "hash")}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
