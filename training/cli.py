"""``jamnet train …``: preprocess the corpus, train, evaluate and ship the models.

jamnet train preprocess [--out data/corpus] [--collections …] [--limit N]
jamnet train fit composer|chorale|improviser [--processes 2] [--no-spark] …
jamnet train ship composer|chorale|improviser [--run data/runs/NAME]
jamnet train all            # reproduces the shipped models in node/ai/models
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "node" / "ai" / "models"


def _fit(values: dict[str, Any], processes: int, spark: bool, master: str) -> dict[str, Any]:
    from spark_jobs.train import distributed
    from training.train import train

    if spark:
        return distributed(values, processes, master)
    return train(values)


def _all(args: argparse.Namespace, argv: list[str]) -> int:
    from spark_jobs.preprocess import run as preprocess
    from training.ship import ship
    from training.train import RECIPES

    corpus: Path = args.corpus
    started = time.monotonic()
    if not (args.reuse_corpus and (corpus / "manifest.json").is_file()):
        collections = ["chorales", "essen", "oneills", "ryans"]
        preprocess(corpus, collections, args.limit, args.master)
    command = "jamnet train all " + " ".join(shlex.quote(a) for a in argv)
    cards = {}
    for name in args.models:
        values = {
            "model": name,
            "corpus": str(corpus),
            "out": str(args.runs / name),
            "seed": args.seed,
            **RECIPES[name],
        }
        if args.epochs is not None:
            values["epochs"] = args.epochs
        print(f"train all: fitting {name}", file=sys.stderr, flush=True)
        summary = _fit(values, args.processes, not args.no_spark, args.master)
        card = ship(
            name, args.runs / name, corpus, args.models_dir, command.strip(), summary=summary
        )
        cards[name] = card["metrics"]
    print(json.dumps({"seconds": round(time.monotonic() - started), "metrics": cards}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """``jamnet train`` and its subcommands."""
    from spark_jobs.preprocess import build_parser as preprocess_parser
    from spark_jobs.train import build_parser as fit_parser
    from training.train import MODELS

    parser = argparse.ArgumentParser(prog="jamnet train", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser(
        "preprocess",
        parents=[preprocess_parser()],
        add_help=False,
        help="music21 corpus → Parquet on Spark",
    )
    sub.add_parser(
        "fit", parents=[fit_parser()], add_help=False, help="train one model (TorchDistributor)"
    )
    ship = sub.add_parser("ship", help="evaluate a run and write NAME.pt + its model card")
    ship.add_argument("model", choices=MODELS)
    ship.add_argument("--run", type=Path, default=None, help="default: data/runs/MODEL")
    ship.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    ship.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    ship.add_argument("--limit", type=int, default=None)
    every = sub.add_parser("all", help="preprocess, train and ship every model")
    every.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    every.add_argument("--runs", type=Path, default=Path("data/runs"))
    every.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    every.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    every.add_argument("--limit", type=int, default=None, help="pieces per collection")
    every.add_argument("--epochs", type=int, default=None, help="override every recipe")
    every.add_argument("--seed", type=int, default=1234)
    every.add_argument("--processes", type=int, default=1)
    every.add_argument("--master", default="local[*]")
    every.add_argument("--no-spark", action="store_true")
    every.add_argument(
        "--reuse-corpus", action="store_true", help="keep an existing preprocessed corpus"
    )
    return parser


def main(argv: list[str]) -> int:
    """Entry point for ``jamnet train``."""
    if argv[:1] == ["preprocess"]:
        from spark_jobs.preprocess import main as preprocess_main

        return preprocess_main(argv[1:])
    if argv[:1] == ["fit"]:
        from spark_jobs.train import main as fit_main

        return fit_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.step == "ship":
        from training.ship import ship

        run = args.run or Path("data/runs") / args.model
        card = ship(
            args.model,
            run,
            args.corpus,
            args.models_dir,
            "jamnet train ship " + " ".join(shlex.quote(a) for a in argv[1:]),
            args.limit,
        )
        print(json.dumps(card["metrics"]))
        return 0
    return _all(args, argv[1:])
