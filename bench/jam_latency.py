"""Latency of the live path: node-added and client-to-client mouth-to-ear, on loopback.

One process runs a node and two clients (real aiortc peers over UDP on this host). A and B
each send a click every 200 ms; each one's played-out audio is searched for the other's.
"Mouth" is when the click's first sample would have entered a microphone that hands over
20 ms frames (so the packetisation delay is included), "ear" when the listener's playout
clock handed the frame holding it to its sink, plus its offset in the frame. Sound-card
buffers are not included (there is no sound card here). Clean runs are repeated with fresh
connections: each connection draws new phases between the senders' and the node's clocks.

Runs, all in this process and one after the other:
- clean: our receive path (node and client jitter buffers);
- impaired: 1% loss and uniform 0-20 ms (10 ± 10 ms) extra delay on every RTP packet A sends
  to the node, injected in user space at A's transport, 60 s (so A→B crosses one impaired
  hop, B→A none: the impaired figures are for A→B only);
- impaired on both hops: the same on the node's packets to B as well (A→B only);
- the clean and impaired runs through stock aiortc's receive path on the node and on B.

Prints progress to stderr and one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench.clicks import WARMUP_S, ClickSource, mouth_to_ear, percentile
from bench.machine import StealMeter, bench_node_config
from client.session import RATE, ArraySink, JamClient
from node.app import Node


def impair(transport: Any, loss: float, jitter_s: float, rng: random.Random) -> None:
    """Drop ``loss`` of the RTP packets a DTLS transport sends and delay the rest 0..jitter_s."""
    original: Callable[[bytes], Any] = transport._send_rtp
    loop = asyncio.get_running_loop()

    async def later(data: bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(ConnectionError):
            await original(data)

    async def send(data: bytes) -> None:
        if len(data) > 1 and 192 <= data[1] <= 223:  # RTCP passes untouched
            await original(data)
            return
        if rng.random() < loss:
            return
        task = loop.create_task(later(data, rng.uniform(0.0, jitter_s)))
        task.add_done_callback(lambda _t: None)

    transport._send_rtp = send


async def run_case(
    label: str,
    seconds: float,
    stock: bool,
    impaired: int,
    seed: int,
    frame_ms: int = 20,
    application: str = "lowdelay",
) -> dict[str, Any]:
    """One node, clients A and B; returns latencies for this case."""
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_node_config(
            tmp, inbound="aiortc" if stock else "jitter", opus_application=application
        )
        node_added: list[float] = []
        async with Node(config) as node:
            assert node.clock is not None
            assert node.service is not None
            node.clock.latency_observers.append(
                lambda v: node_added.append(v) if time.monotonic() - started > WARMUP_S else None
            )
            started = time.monotonic() + 3600.0  # reset once both clients are connected
            # Both musicians click; each hears the other. The node's one mix clock cannot be
            # in phase with both senders, so both directions are measured.
            frame = RATE * frame_ms // 1000
            source_a, source_b = ClickSource(frame), ClickSource(frame)
            sink_a, sink_b = ArraySink(), ArraySink()
            async with (
                JamClient(node.url, Account.create(), "A") as a,
                JamClient(node.url, Account.create(), "B", stock_receive=stock) as b,
            ):
                session = await a.create_session(f"bench {label}", frame_ms=frame_ms)
                await a.join(session["id"])
                await b.join(session["id"])
                await b.connect(source_b, sink_b)
                await a.connect(source_a, sink_a)
                if impaired:
                    rng = random.Random(seed)
                    assert a.pc is not None
                    impair(a.pc.getTransceivers()[0].sender.transport, 0.01, 0.020, rng)
                if impaired > 1:
                    peer = node.service.peer(session["id"], b.participant["id"])
                    assert peer is not None
                    impair(peer.pc.getTransceivers()[0].sender.transport, 0.01, 0.020, rng)
                started = time.monotonic()
                while time.monotonic() - started < seconds:
                    await asyncio.sleep(1.0)
                    print(
                        f"  {label}: {time.monotonic() - started:4.0f}/{seconds:.0f} s",
                        file=sys.stderr,
                        end="\r",
                    )
                print(file=sys.stderr)
                slot = next(
                    s
                    for s in node.service.mixers()[session["id"]].slots
                    if s is not None and s.key == a.participant["id"]
                )
                jitter = {
                    "node_target": slot.jitter.target,
                    "node_late": slot.jitter.stats.late,
                    "node_lost": slot.jitter.stats.lost,
                    "node_concealed": slot.jitter.stats.concealed,
                    "node_dropped": slot.jitter.stats.dropped,
                    "client_target": b.jitter.target,
                    "client_late": b.jitter.stats.late,
                    "client_lost": b.jitter.stats.lost,
                    "client_dropped": b.jitter.stats.dropped,
                }
    m2e: list[tuple[float, float]] = []  # (seconds into the run, latency ms)
    directions = [(source_a, sink_b)] + ([] if impaired else [(source_b, sink_a)])
    for source, sink in directions:
        for mouth, latency in mouth_to_ear(source, sink, started + WARMUP_S):
            m2e.append((mouth - started, latency))
    return {"m2e": m2e, "node_added_ms": [v * 1000 for v in node_added], "jitter": jitter}


def summarize(trials: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Figures over every click of every trial; growth within each trial, averaged."""
    latencies = [lat for trial in trials for _, lat in trial["m2e"]]
    node_added = [v for trial in trials for v in trial["node_added_ms"]]
    growths = []
    for trial in trials:
        first = [lat for t, lat in trial["m2e"] if t < 10]
        last = [lat for t, lat in trial["m2e"] if t > seconds - 10]
        if seconds >= 30 and first and last:
            growths.append(statistics.median(last) - statistics.median(first))
    return {
        "trials": len(trials),
        "clicks": len(latencies),
        "m2e_ms_p50": percentile(latencies, 50),
        "m2e_ms_p99": percentile(latencies, 99),
        "m2e_ms_trial_p50s": [percentile([lat for _, lat in t["m2e"]], 50) for t in trials],
        "growth_ms": statistics.mean(growths) if growths else None,
        "node_added_ms_p50": percentile(node_added, 50),
        "node_added_ms_p99": percentile(node_added, 99),
        "jitter": [trial["jitter"] for trial in trials],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clean-seconds",
        type=float,
        default=12.0,
        help="length of each clean trial (a click each 200 ms after 2 s of warm-up)",
    )
    parser.add_argument(
        "--clean-trials",
        type=int,
        default=5,
        help="clean trials, each with fresh connections: every trial draws new clock phases",
    )
    parser.add_argument(
        "--impaired-seconds", type=float, default=60.0, help="length of the impaired runs"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--frame-ms",
        type=int,
        choices=(5, 10, 20),
        default=20,
        help="the session's frame size (the stock-aiortc baseline always runs at 20 ms)",
    )
    parser.add_argument(
        "--no-application-ab",
        action="store_true",
        help="skip the clean trials with Opus application=audio (6.5 ms look-ahead) that are "
        "compared with restricted-low-delay (2.5 ms) in the same run",
    )
    args = parser.parse_args()
    frame_ms = args.frame_ms
    steal = StealMeter()
    results = {}
    cases: list[tuple[str, bool, int, float, int, int, str]] = [
        ("clean", False, 0, args.clean_seconds, args.clean_trials, frame_ms, "lowdelay"),
        ("impaired", False, 1, args.impaired_seconds, 1, frame_ms, "lowdelay"),
        ("impaired_both_hops", False, 2, args.impaired_seconds, 1, frame_ms, "lowdelay"),
        ("baseline_clean", True, 0, args.clean_seconds, args.clean_trials, 20, "audio"),
        ("baseline_impaired", True, 1, args.impaired_seconds, 1, 20, "audio"),
    ]
    if not args.no_application_ab:
        cases.insert(
            1, ("clean_audio_app", False, 0, args.clean_seconds, args.clean_trials, frame_ms,
                "audio"),
        )  # fmt: skip
    for label, stock, impaired, seconds, trials, ms, application in cases:
        print(f"{label} …", file=sys.stderr)
        runs = [
            await run_case(
                f"{label} {n + 1}/{trials}", seconds, stock, impaired, args.seed + n, ms,
                application,
            )
            for n in range(trials)
        ]  # fmt: skip
        results[label] = summarize(runs, seconds)
        print(f"  {json.dumps(results[label])}", file=sys.stderr)
    clean, imp = results["clean"], results["impaired"]
    base, base_imp = results["baseline_clean"], results["baseline_impaired"]
    summary = {
        "node_added_ms_p50": clean["node_added_ms_p50"],
        "node_added_ms_p99": clean["node_added_ms_p99"],
        "m2e_ms_p50": clean["m2e_ms_p50"],
        "m2e_ms_p99": clean["m2e_ms_p99"],
        "m2e_impaired_ms_p50": imp["m2e_ms_p50"],
        "m2e_impaired_ms_p99": imp["m2e_ms_p99"],
        "m2e_impaired_growth_ms": imp["growth_ms"],
        "node_added_impaired_ms_p50": imp["node_added_ms_p50"],
        "m2e_impaired_both_hops_ms_p50": results["impaired_both_hops"]["m2e_ms_p50"],
        "m2e_impaired_both_hops_growth_ms": results["impaired_both_hops"]["growth_ms"],
        "baseline_m2e_ms_p50": base["m2e_ms_p50"],
        "baseline_m2e_impaired_ms_p50": base_imp["m2e_ms_p50"],
        "baseline_m2e_impaired_growth_ms": base_imp["growth_ms"],
        "m2e_audio_app_ms_p50": results.get("clean_audio_app", {}).get("m2e_ms_p50"),
        "node_added_audio_app_ms_p50": results.get("clean_audio_app", {}).get("node_added_ms_p50"),
        "clicks": {k: v["clicks"] for k, v in results.items()},
        "frame_ms": frame_ms,
        "steal_pct": steal.percent(),
        "cases": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
