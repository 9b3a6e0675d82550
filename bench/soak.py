"""Soak: a long jam with musicians coming and going, to catch what only time shows.

    .venv/bin/python bench/soak.py [--minutes 30] [--musicians 16] [--frame-ms 10]

One node in this process; the musicians in a second process (bench/lightclient.py: real
aiortc peer connections sending Opus). The owner stays the whole time and records the whole
time; every other musician joins, plays for 3-15 s while moving and chatting every few
seconds, then leaves (four in five say goodbye; the fifth just vanishes, like a killed client
or a closed tab, and the node must notice), and a new one (a new key) takes the place 1-3 s
later. Every 10 s the node's RSS, open file descriptors and threads are sampled; every tick's
time and every live stream's concealment are recorded.

Printed (one JSON object, last line of stdout): the first and last 5 minutes' RSS, fds,
threads, tick p99 and concealed %, their growth (last minus first, medians of the samples),
joins, goodbyes and vanishings, the steal seen, and the recording: frames written against
the frames the mix clock made while it ran (``recording_frames_lost``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import StealMeter
from node.app import Node
from node.config import load_config

WINDOW_S = 300.0
SAMPLE_EVERY_S = 10.0


def _musicians_main(
    url: str, session_id: str, owner_key: bytes, count: int, frame_ms: int, stop: Any, out: Any
) -> None:
    """Child process: the owner for good, ``count - 1`` places that churn."""
    from eth_account import Account

    from bench.lightclient import LightClient, opus_payloads
    from node.heap import freeze

    payloads = opus_payloads(frame_ms)
    counts = {"joins": 0, "goodbyes": 0, "vanished": 0, "errors": 0}
    rng = random.Random(7)

    async def place(index: int) -> None:
        while not stop.is_set():
            musician = LightClient(url, session_id, Account.create(), f"m{index}")
            try:
                angle = rng.uniform(-3.1, 3.1)
                await musician.start(payloads, frame_ms, 6 * np.cos(angle), 6 * np.sin(angle))
                counts["joins"] += 1
                stay = time.monotonic() + rng.uniform(3, 15)
                while time.monotonic() < stay and not stop.is_set():
                    await asyncio.sleep(rng.uniform(1, 3))
                    x, y = rng.uniform(-9, 9), rng.uniform(-9, 9)
                    await musician.client.control(type="pose", x=x, y=y)
                    if rng.random() < 0.4:
                        await musician.client.control(type="chat", text=f"m{index} here")
                if rng.random() < 0.2:
                    await musician.vanish()
                    counts["vanished"] += 1
                else:
                    await musician.leave()
                    counts["goodbyes"] += 1
            except Exception as exc:  # a refused join (the place is not free yet) and the like
                counts["errors"] += 1
                print(f"  m{index}: {type(exc).__name__}: {exc}", file=sys.stderr)
                await musician.vanish()
            await asyncio.sleep(rng.uniform(1, 3))

    async def run() -> None:
        freeze()
        owner = LightClient(url, session_id, Account.from_key(owner_key), "owner")
        await owner.start(payloads, frame_ms, 0.0, 0.0)
        places = [asyncio.create_task(place(i)) for i in range(1, count)]
        await asyncio.to_thread(stop.wait)
        out.put(dict(counts))
        for task in places:
            task.cancel()
        await asyncio.wait(places, timeout=30)
        await asyncio.wait_for(owner.leave(), 30)

    asyncio.run(run())


def fd_kinds() -> dict[str, int]:
    """Open file descriptors by kind (socket, pipe, anon_inode:…, file)."""
    kinds: dict[str, int] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":")[0] if ":" in target else "file"
        if kind == "anon_inode":
            kind = target
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _process_figures() -> dict[str, float]:
    status = Path("/proc/self/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return {
        "rss_mb": rss_kb / 1024,
        "fds": float(len(os.listdir("/proc/self/fd"))),
        "threads": float(threading.active_count()),
        "os_threads": float(len(os.listdir("/proc/self/task"))),
    }


class Concealment:
    """Concealed and played frames of the streams that are live (sending within 0.5 s): a
    musician who vanished is concealed until the node drops them, which is the node doing
    its job, not a real-time miss."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[int, int]] = {}
        self.concealed = 0
        self.played = 0

    def sample(self, mixer: Any, now: float) -> None:
        seen = {}
        for slot in mixer.slots:
            if slot is None:
                continue
            stats = slot.jitter.stats
            key = id(slot)
            seen[key] = (stats.concealed, stats.played)
            before = self.last.get(key)
            if before is not None and now - slot.last_packet_s < 0.5:
                self.concealed += stats.concealed - before[0]
                self.played += stats.played - before[1]
        self.last = seen

    def take(self) -> tuple[int, int]:
        out = (self.concealed, self.played)
        self.concealed = self.played = 0
        return out


async def soak(minutes: float, musicians: int, frame_ms: int) -> dict[str, Any]:
    from eth_account import Account

    from client.session import JamClient

    duration = minutes * 60
    window = min(WINDOW_S, duration / 3)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            None,
            {
                "http": {"port": 0},
                "data_dir": tmp,
                "ai": {"enabled": False},
                "chain": {"mode": "off"},
                "p2p": {"enabled": False},
                "session": {
                    "challenges_per_minute": 1_000_000,  # every musician joins from loopback
                    # Room for those who vanished while the node has not yet dropped them
                    # (media_timeout_s + reconnect_grace_s): their places come back then.
                    "max_participants": musicians + 8,
                    **{f"max_participants_{ms}ms": musicians + 8 for ms in (5, 10, 20)},
                },
            },
            environ={},
        )
        async with Node(config) as node:
            assert node.service is not None
            assert node.clock is not None
            owner_key = Account.create()
            async with JamClient(node.url, owner_key, "owner") as owner:
                sid = (await owner.create_session("soak", frame_ms=frame_ms))["id"]
            ctx = mp.get_context("spawn")
            stop, out = ctx.Event(), ctx.Queue()
            proc = ctx.Process(
                target=_musicians_main,
                args=(node.url, sid, bytes(owner_key.key), musicians, frame_ms, stop, out),
            )
            proc.start()
            session = node.service.get(sid)
            while not any(p.connected for p in session.participants.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            await asyncio.sleep(3.0)
            mixer = node.service.mixers()[sid]
            recording_id = node.service.start_recording(sid)
            sample0 = mixer.sample
            ticks: list[tuple[float, float]] = []
            node.clock.tick_observers.append(lambda t: ticks.append((time.monotonic(), t)))
            concealment = Concealment()
            samples: list[tuple[float, dict[str, float], tuple[int, int]]] = []
            steal = StealMeter()
            started = time.monotonic()
            next_sample = started
            try:
                while (now := time.monotonic()) - started < duration:
                    await asyncio.sleep(1.0)
                    concealment.sample(mixer, time.monotonic())
                    if now >= next_sample:
                        samples.append((now - started, _process_figures(), concealment.take()))
                        next_sample += SAMPLE_EVERY_S
                        print(
                            f"  {now - started:5.0f}/{duration:.0f} s "
                            f"rss {samples[-1][1]['rss_mb']:.0f} MB "
                            f"fds {samples[-1][1]['fds']:.0f} "
                            f"in session {len(session.participants)}",
                            file=sys.stderr,
                        )
                # The frames the clock made while the take was on: read before stopping (the
                # stop itself, padding and closing every stem, takes ticks of its own).
                produced = (mixer.sample - sample0) // mixer.frame_samples
                row = node.service.stop_recording(sid)
                steal_pct = steal.percent()
            finally:
                stop.set()
                counts = out.get(timeout=120) if proc.is_alive() else {}
                proc.join(timeout=60)
                if proc.is_alive():
                    proc.kill()
            with wave.open(str(Path(row["path"]) / "mix.wav")) as mix:
                written = mix.getnframes() // mixer.frame_samples
            # Let the last ones be noticed and dropped, then look for what was left behind.
            await asyncio.sleep(8.0)
            leftovers = {
                "participants": len(session.participants),
                "event_subscribers": node.service.events.subscribers(sid),
                "peer_connections": len(node.service._live[sid].peers._connections),
                "presence_entries": len(node.service._live[sid].presence._entries),
                "rtt_entries": len(node.service._live[sid].rtt_ms),
                "fds": fd_kinds(),
            }

    def window_figures(first: bool) -> dict[str, float]:
        lo, hi = (0.0, window) if first else (duration - window, duration + 1)
        inside = [s for s in samples if lo <= s[0] < hi]
        tick_ms = [t * 1000 for at, t in ticks if lo <= at - started < hi]
        concealed = sum(s[2][0] for s in inside)
        played = sum(s[2][1] for s in inside)
        return {
            "rss_mb": round(statistics.median(s[1]["rss_mb"] for s in inside), 1),
            "fds": statistics.median(s[1]["fds"] for s in inside),
            "threads": statistics.median(s[1]["os_threads"] for s in inside),
            "tick_p99_ms": round(float(np.percentile(tick_ms, 99)), 3) if tick_ms else None,
            "concealed_pct": round(100 * concealed / max(1, concealed + played), 4),
        }

    first, last = window_figures(True), window_figures(False)
    return {
        "minutes": minutes,
        "musicians": musicians,
        "frame_ms": frame_ms,
        "window_s": window,
        "first": first,
        "last": last,
        "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
        "fd_growth": last["fds"] - first["fds"],
        "thread_growth": last["threads"] - first["threads"],
        "tick_p99_ms_first": first["tick_p99_ms"],
        "tick_p99_ms_last": last["tick_p99_ms"],
        "concealed_pct_first": first["concealed_pct"],
        "concealed_pct_last": last["concealed_pct"],
        "recording_id": recording_id,
        "recording_frames_made": int(produced),
        "recording_frames_written": int(written),
        "recording_frames_lost": int(max(0, produced - written)),
        "churn": counts,
        "left_behind_after": leftovers,
        "steal_pct": steal_pct,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--musicians", type=int, default=16)
    parser.add_argument("--frame-ms", type=int, choices=(5, 10, 20), default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(soak(args.minutes, args.musicians, args.frame_ms))))


if __name__ == "__main__":
    main()
