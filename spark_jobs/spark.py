"""A SparkSession set up for this machine, and a progress line for long jobs."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _environment() -> None:
    # Workers must run this interpreter (the venv: music21, torch) and Spark must not guess
    # an address from the host name, which fails on machines without DNS for it.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@contextmanager
def spark_session(app: str, master: str = "local[*]") -> Iterator[Any]:
    """A SparkSession on ``master`` (``local[*]``, ``local[2]``, ``spark://host:7077``)."""
    _environment()
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is a pinned dependency
        raise SystemExit("pyspark is not installed: run `make install`") from exc
    spark = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", os.environ.get("JAMNET_SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


@contextmanager
def progress(spark: Any, label: str, every_s: float = 5.0) -> Iterator[None]:
    """Print ``label: done/total tasks`` to stderr while Spark stages run."""
    tracker = spark.sparkContext.statusTracker()
    stop = threading.Event()
    started = time.monotonic()

    def report() -> None:
        last = ""
        while not stop.wait(every_s):
            done = total = 0
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info is not None:
                    done += info.numCompletedTasks
                    total += info.numTasks
            if total:
                line = f"{label}: {done}/{total} tasks, {time.monotonic() - started:.0f} s"
                if line != last:
                    print(line, file=sys.stderr, flush=True)
                    last = line

    thread = threading.Thread(target=report, name="spark-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
