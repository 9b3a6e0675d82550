"""A period's listen receipts → payouts per work, on Spark.

    python -m spark_jobs.royalties --receipts period-3.jsonl --period 3 \\
        --eth WEI --jam WEI --out payouts-3.json [--master local[*]]

Input: JSON lines, one counted receipt each (``play_id``, ``period_id``, ``work_id``,
``listener``, ``address``, ``counted_at``), as the node exports them. The job keeps each
play id once and this period's receipts only, re-applies the per-listener cap (the first
1,000 by time per key; the node already refuses more, this holds for receipts from anywhere),
and counts plays per work.

The rule is **pro-rata**: a period's pool (ETH and JAM alike) is divided among works in
proportion to their counted plays, each share rounded down to the wei; what rounding leaves
(less than one wei per work) is the dust, which stays in the pool for the next period. Why
not user-centric: user-centric splits each listener's own payment among what they played,
but jamnet's pool is funded mostly by sponsors and the treasury, not per listener, so there
is no per-listener amount to divide; the caps (per key, per address) bound what a fake
listener can redirect instead.

Counting runs on Spark (millions of receipts); the division is exact integer arithmetic in
the driver, over one row per work. Output JSON: ``period``, ``receipts`` (kept), ``dropped``
(duplicates, other periods, over the cap), ``plays`` per work, ``payouts`` [{work_id, eth,
token}], ``paid`` and ``dust`` per asset.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from spark_jobs.spark import progress, spark_session

PER_KEY_PER_PERIOD = 1000


def allocate(plays: dict[int, int], total: int) -> tuple[dict[int, int], int]:
    """Pro-rata shares of ``total`` by play count, rounded down; returns (shares, dust)."""
    count = sum(plays.values())
    if count == 0 or total == 0:
        return dict.fromkeys(plays, 0), total
    shares = {w: total * n // count for w, n in sorted(plays.items())}
    return shares, total - sum(shares.values())


def count_plays(spark: Any, receipts: str, period: int) -> tuple[dict[int, int], int, int]:
    """Plays per work after dedup, period filter and the per-key cap; (plays, kept, read)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.types import (
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    schema = StructType(
        [
            StructField("play_id", StringType()),
            StructField("period_id", LongType()),
            StructField("work_id", LongType()),
            StructField("listener", StringType()),
            StructField("address", StringType()),
            StructField("counted_at", DoubleType()),
        ]
    )
    frame = spark.read.schema(schema).json(receipts)
    read = frame.count()
    valid = frame.where(
        (F.col("period_id") == period)
        & F.col("play_id").isNotNull()
        & F.col("work_id").isNotNull()
        & (F.col("work_id") >= 0)
        & F.col("listener").isNotNull()
    ).dropDuplicates(["play_id"])
    ranked = valid.withColumn(
        "rank",
        F.row_number().over(
            Window.partitionBy(F.lower(F.col("listener"))).orderBy("counted_at", "play_id")
        ),
    ).where(F.col("rank") <= PER_KEY_PER_PERIOD)
    rows = ranked.groupBy("work_id").count().collect()
    plays = {int(r["work_id"]): int(r["count"]) for r in rows}
    return plays, sum(plays.values()), read


def rollup(receipts: str, period: int, eth: int, jam: int, master: str) -> dict[str, Any]:
    """Run the roll-up; the payouts as a JSON-ready dict."""
    started = time.monotonic()
    with (
        spark_session(f"jamnet-royalties-{period}", master) as spark,
        progress(spark, f"royalties period {period}"),
    ):
        plays, kept, read = count_plays(spark, receipts, period)
    eth_shares, eth_dust = allocate(plays, eth)
    jam_shares, jam_dust = allocate(plays, jam)
    payouts = [
        {"work_id": w, "eth": str(eth_shares[w]), "token": str(jam_shares[w])}
        for w in sorted(plays)
        if eth_shares[w] or jam_shares[w]
    ]
    return {
        "period": period,
        "rule": "pro-rata",
        "receipts": kept,
        "dropped": read - kept,
        "plays": {str(w): n for w, n in sorted(plays.items())},
        "payouts": payouts,
        "pool": {"eth": str(eth), "token": str(jam)},
        "paid": {
            "eth": str(sum(eth_shares.values())),
            "token": str(sum(jam_shares.values())),
        },
        "dust": {"eth": str(eth_dust), "token": str(jam_dust)},
        "seconds": round(time.monotonic() - started, 3),
    }


def _wei(text: str) -> int:
    if not text.isascii() or not text.isdecimal():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of wei")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.royalties", description=__doc__)
    parser.add_argument("--receipts", required=True, help="JSON-lines file (or directory)")
    parser.add_argument("--period", type=int, required=True)
    parser.add_argument("--eth", type=_wei, default=0, help="ETH the period pays out, in wei")
    parser.add_argument("--jam", type=_wei, default=0, help="JAM the period pays out, in wei")
    parser.add_argument("--out", required=True, help="payouts JSON to write")
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    args = parser.parse_args(argv)
    if not Path(args.receipts).exists():
        print(f"error: no receipts at {args.receipts}", file=sys.stderr)
        return 2
    result = rollup(args.receipts, args.period, args.eth, args.jam, args.master)
    out = Path(args.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(out)
    print(
        f"period {args.period}: {result['receipts']} plays of {len(result['plays'])} works,"
        f" dust {result['dust']['eth']} wei ETH / {result['dust']['token']} wei JAM",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
