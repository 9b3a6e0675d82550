"""Overload: a duo jams, the machine is swamped for a while, then calm again. Does it recover?

A node runs in its own process (``jamnet node``); two musicians jam through it, each sending a
click every 200 ms and hearing the other's. After ``--before`` seconds, processes that keep
every core busy (``--load`` tight loops per core, normal priority) run for ``--busy`` seconds; then
the machine is calm for ``--after`` seconds. Mouth-to-ear latency is measured throughout:

- ``m2e_ms_p50_before`` / ``_during`` / ``_after`` (from 5 s after the calm to the end);
- ``recovery_s``: from the moment the busy processes stop to the first 1 s window after which
  every window's p50 stays within 10 ms of ``before`` (null if it never gets there);
- ``after_minus_before_ms``.

``--client cli`` uses aiortc clients in this process (the node's and the clients' own
jitter buffers; their loop at ``--client-nice``, as ``jamnet jam --nice`` runs it);
``--client chromium`` two real headless Chromium pages with click trains in their fake
microphones, timed by AudioWorklet taps (the browsers' own receive buffers).
Each run is repeated ``--runs`` times; the figures are medians over runs, with every run's
figures and the CPU stolen by the hypervisor in each phase. Prints progress to stderr and one
JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account

from bench.clicks import ClickSource, mouth_to_ear, percentile
from bench.machine import StealMeter
from client.session import RATE, ArraySink, JamClient
from node.heap import freeze
from node.media import priority

WINDOW_S = 1.0
STEP_S = 0.25
WITHIN_MS = 10.0


def _spin(stop_at: float) -> None:
    """One busy core until ``stop_at`` (monotonic), at normal priority (whatever the thread
    that started it runs at)."""
    os.setpriority(os.PRIO_PROCESS, 0, priority.NORMAL)
    x = 0
    while time.monotonic() < stop_at:
        x += 1


def start_node(data_dir: str, frame_ms: int) -> tuple[subprocess.Popen[str], str]:
    """A ``jamnet node`` process on a free port; returns it and its URL."""
    env = {
        **os.environ,
        "JAMNET_DATA_DIR": data_dir,
        "JAMNET_MEDIA__FRAME_MS": str(frame_ms),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "node", "--port", "0", "--chain", "off", "--no-ai",
         "--no-p2p", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=sys.stderr, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "open http" in line:
            return proc, line.split("open ", 1)[1].strip()
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("the node did not start")


def metrics_text(url: str) -> str:
    """The node's /metrics page."""
    with urllib.request.urlopen(url + "metrics", timeout=10) as reply:
        text: str = reply.read().decode()
        return text


def node_counters(url: str) -> dict[str, float]:
    """The node's clock counters from /metrics."""
    text = metrics_text(url)
    wanted = ("jamnet_ticks_skipped", "jamnet_tick_overruns", "jamnet_overload_spells")
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.removesuffix("_total") in wanted:
            out[name.removesuffix("_total")] = float(value)
    return out


def recovery(
    samples: list[tuple[float, float]], calm_at: float, end: float, before: float
) -> float | None:
    """Seconds from ``calm_at`` to the first window after which every window's p50 stays
    within WITHIN_MS of ``before``."""
    starts = []
    t = calm_at
    while t + WINDOW_S <= end:
        starts.append(t)
        t += STEP_S
    ok = []
    for start in starts:
        window = [lat for mouth, lat in samples if start <= mouth < start + WINDOW_S]
        ok.append(bool(window) and percentile(window, 50) <= before + WITHIN_MS)
    for i, start in enumerate(starts):
        if all(ok[i:]):
            return round(start - calm_at, 2)
    return None


async def run_cli(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run with two aiortc clients in this process."""
    frame = RATE * args.frame_ms // 1000
    source_a, source_b = ClickSource(frame), ClickSource(frame)
    sink_a, sink_b = ArraySink(), ArraySink()
    async with (
        JamClient(url, Account.create(), "A") as a,
        JamClient(url, Account.create(), "B") as b,
    ):
        # The event socket brings the node's figures (--trace shows them); without
        # --trace, nothing but the audio runs in this process.
        a.watch_events = b.watch_events = bool(args.trace)
        session = await a.create_session("overload", frame_ms=args.frame_ms)
        await a.join(session["id"])
        await b.join(session["id"])
        await b.connect(source_b, sink_b)
        await a.connect(source_a, sink_a)
        # As `jamnet jam` does once connected (node.heap): without it, this process's
        # collector passes (its two clients hold every frame they heard) stall both clients
        # for hundreds of milliseconds, long after the busy spell.
        freeze()
        # And as it does, the audio loop asks for --client-nice (back afterwards: the next
        # run's node is started from this thread).
        priority.raise_this_thread(args.client_nice, "the clients' loop", "or --client-nice 0")
        trace: list[dict[str, Any]] = []
        tracer = asyncio.create_task(_trace(url, a, b, trace)) if args.trace else None
        try:
            phases = await _phases(url, args)
        finally:
            priority.set_this_thread(priority.NORMAL)
        if tracer is not None:
            tracer.cancel()
        skipped = {"a_uplink": a.track.skipped if a.track else 0,
                   "b_uplink": b.track.skipped if b.track else 0,
                   "a_playout": a.playout_skipped, "b_playout": b.playout_skipped}  # fmt: skip
    samples = mouth_to_ear(source_a, sink_b) + mouth_to_ear(source_b, sink_a)
    figures = {**_figures(samples, phases), "client_skipped": skipped}
    if args.trace:
        figures["trace"] = _timeline(samples, trace, phases)
    return figures


async def _trace(url: str, a: JamClient, b: JamClient, out: list[dict[str, Any]]) -> None:
    """Every half second: the clients' and the node's jitter-buffer delays (``--trace``)."""
    while True:
        await asyncio.sleep(0.5)
        text = await asyncio.to_thread(metrics_text, url)
        node = [round(float(line.rsplit(" ", 1)[1]), 1) for line in text.splitlines()
                if line.startswith("jamnet_jitter_delay_ms{")]  # fmt: skip
        out.append(
            {
                "t": time.monotonic(),
                "a_ms": round(a.jitter.delay_s * 1000, 1),
                "b_ms": round(b.jitter.delay_s * 1000, 1),
                "node_ms": node,
                "a_parts": (await a.latency())["parts_ms"],
                "b_parts": (await b.latency())["parts_ms"],
            }
        )


def _timeline(
    samples: list[tuple[float, float]], trace: list[dict[str, Any]], phases: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per second since the start: p50 mouth-to-ear and the buffers' delays."""
    rows = []
    t = phases["t0"]
    while t < phases["end"]:
        window = [lat for mouth, lat in samples if t <= mouth < t + 1.0]
        buffers = [row for row in trace if t <= row["t"] < t + 1.0]
        rows.append(
            {
                "s": round(t - phases["busy_at"], 1),
                "p50": round(percentile(window, 50), 1) if window else None,
                "buffers": [{k: v for k, v in r.items() if k != "t"} for r in buffers[-1:]],
            }
        )
        t += 1.0
    return rows


async def _phases(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Before, busy, after: returns when each began and what the node and the machine did."""
    steal = StealMeter()
    counters0 = node_counters(url)
    t0 = time.monotonic()
    await asyncio.sleep(args.before)
    busy_at = time.monotonic()
    steal_before = steal.percent()
    steal.reset()
    stop_at = busy_at + args.busy
    count = args.load * (os.cpu_count() or 2)
    spinners = [mp.Process(target=_spin, args=(stop_at,)) for _ in range(count)]
    for proc in spinners:
        proc.start()
    print(f"  busy for {args.busy:.0f} s: {count} spinning processes", file=sys.stderr)
    await asyncio.sleep(args.busy)
    for proc in spinners:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    calm_at = time.monotonic()
    steal_busy = steal.percent()
    steal.reset()
    await asyncio.sleep(args.after)
    end = time.monotonic()
    counters = node_counters(url)
    return {
        "t0": t0,
        "busy_at": busy_at,
        "calm_at": calm_at,
        "end": end,
        "steal_pct": {"before": steal_before, "busy": steal_busy, "after": steal.percent()},
        "node": {k: counters.get(k, 0.0) - counters0.get(k, 0.0) for k in counters},
    }


def _figures(samples: list[tuple[float, float]], phases: dict[str, Any]) -> dict[str, Any]:
    warm = phases["t0"] + 2.0
    before = [lat for mouth, lat in samples if warm <= mouth < phases["busy_at"]]
    during = [lat for mouth, lat in samples if phases["busy_at"] <= mouth < phases["calm_at"]]
    after = [lat for mouth, lat in samples if mouth >= phases["calm_at"] + 5.0]
    p50_before = percentile(before, 50)
    p50_after = percentile(after, 50)
    return {
        "m2e_ms_p50_before": round(p50_before, 1),
        "m2e_ms_p50_during": round(percentile(during, 50), 1),
        "m2e_ms_p99_during": round(percentile(during, 99), 1),
        "m2e_ms_p50_after": round(p50_after, 1),
        "after_minus_before_ms": round(p50_after - p50_before, 1),
        "recovery_s": recovery(samples, phases["calm_at"], phases["end"], p50_before),
        "clicks": {"before": len(before), "during": len(during), "after": len(after)},
        "steal_pct": phases["steal_pct"],
        "node": phases["node"],
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    """The median of a figure over runs (None if any run has none)."""
    values = [run[key] for run in runs]
    if any(v is None for v in values):
        return None
    return round(statistics.median(values), 2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("cli", "chromium"), default="cli")
    parser.add_argument(
        "--transport",
        choices=("datachannel", "rtp"),
        default="datachannel",
        help="the browsers' audio path (--client chromium)",
    )
    parser.add_argument("--frame-ms", type=int, choices=(5, 10, 20), default=20)
    parser.add_argument("--before", type=float, default=10.0, help="calm seconds first")
    parser.add_argument("--busy", type=float, default=10.0, help="seconds with every core busy")
    parser.add_argument(
        "--load", type=int, default=4, help="spinning processes per core while busy"
    )
    parser.add_argument("--after", type=float, default=15.0, help="calm seconds afterwards")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (medians reported)")
    parser.add_argument(
        "--trace", action="store_true", help="add a per-second timeline of p50 and buffer delays"
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=-10,
        help="--client cli: the clients' loop's nice value, as `jamnet jam --nice` (0: unraised)",
    )
    args = parser.parse_args()
    runs = []
    for n in range(args.runs):
        print(f"run {n + 1}/{args.runs}: {args.client}, {args.frame_ms} ms", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            proc, url = start_node(tmp, args.frame_ms)
            try:
                if args.client == "cli":
                    run = await run_cli(url, args)
                else:
                    from bench.browser_latency import run_overload_chromium

                    run = await run_overload_chromium(url, args, _phases, _figures)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        print(f"  {json.dumps(run)}", file=sys.stderr)
        runs.append(run)
    summary = {
        "client": args.client,
        "frame_ms": args.frame_ms,
        "client_nice": args.client_nice if args.client == "cli" else None,
        "runs": len(runs),
        **{
            key: median_of(runs, key)
            for key in (
                "m2e_ms_p50_before",
                "m2e_ms_p50_during",
                "m2e_ms_p50_after",
                "after_minus_before_ms",
                "recovery_s",
            )
        },
        "recovery_s_runs": [run["recovery_s"] for run in runs],
        "steal_pct_runs": [run["steal_pct"] for run in runs],
        "per_run": runs,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
