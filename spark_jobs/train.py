"""Distributed training on Spark with TorchDistributor, reading the preprocessed Parquet.

    python -m spark_jobs.train composer --corpus data/corpus --out runs/composer \\
        [--processes 2] [--master local[*]] [--no-spark]

The training function is ``training.train.train``: the same function runs here under
TorchDistributor (one torchrun process per ``--processes``, gloo all-reduce, CPU) and, with
``--no-spark``, in this process. ``local_mode`` is on (the processes run on the driver's
machine, which is what a single node or the Swarm stack's Spark master offers) and ``use_gpu``
is off unless ``--gpu`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.train import MODELS, RECIPES, TrainConfig, train


def distributed(
    values: dict[str, Any], processes: int, master: str = "local[*]", gpu: bool = False
) -> dict[str, Any]:
    """Run ``train(values)`` in ``processes`` torchrun workers through TorchDistributor."""
    from spark_jobs.spark import spark_session

    with spark_session(f"jamnet-train-{values['model']}", master):
        from pyspark.ml.torch.distributor import TorchDistributor

        distributor = TorchDistributor(num_processes=processes, local_mode=True, use_gpu=gpu)
        result = distributor.run(train, values)
        if not isinstance(result, dict):
            raise RuntimeError("TorchDistributor returned no summary from rank 0")
        return result


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the training job (also used by ``jamnet train fit``)."""
    parser = argparse.ArgumentParser(
        prog="jamnet train fit", description="train a model on the preprocessed corpus"
    )
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    parser.add_argument("--out", type=Path, default=None, help="default: data/runs/MODEL")
    parser.add_argument("--epochs", type=int, help="default: the model's recipe")
    parser.add_argument("--batch-size", type=int, help="default: the model's recipe")
    parser.add_argument("--lr", type=float, help="default: the model's recipe")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--patience", type=int, help="default: the model's recipe")
    parser.add_argument("--limit", type=int, default=None, help="pieces per split (small runs)")
    parser.add_argument("--max-batches", type=int, default=None, help="batches per epoch")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--processes", type=int, default=1, help="TorchDistributor processes")
    parser.add_argument("--master", default="local[*]", help="Spark master")
    parser.add_argument("--gpu", action="store_true", help="use_gpu=True (needs CUDA)")
    parser.add_argument(
        "--no-spark", action="store_true", help="run the same function in this process"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Plain training values from parsed arguments."""
    recipe = RECIPES[args.model]
    chosen = {
        name: getattr(args, name) if getattr(args, name) is not None else recipe[name]
        for name in ("epochs", "batch_size", "lr", "patience")
    }
    for name in ("epochs", "batch_size", "patience"):
        if chosen[name] < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if args.processes < 1:
        raise SystemExit("--processes must be at least 1")
    if not chosen["lr"] > 0:
        raise SystemExit("--lr must be positive")
    out = args.out or Path("data/runs") / args.model
    return {
        "model": args.model,
        "corpus": str(args.corpus),
        "out": str(out),
        **chosen,
        "seed": args.seed,
        "limit": args.limit,
        "max_batches": args.max_batches,
        "resume": args.resume,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: prints the training summary as JSON."""
    args = build_parser().parse_args(argv)
    values = config_from_args(args)
    from training.data import manifest

    manifest(Path(values["corpus"]))  # a clear error before Spark starts
    if args.no_spark:
        if args.processes != 1:
            raise SystemExit("--no-spark runs one process; drop --processes")
        summary = train(values)
    else:
        summary = distributed(values, args.processes, args.master, args.gpu)
    print(json.dumps(summary), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
