"""The jamnet network on loopback: discovery and directory propagation, medians of runs.

    .venv/bin/python bench/p2p.py [--nodes 5] [--runs 3]

Each run starts ``--nodes`` real nodes in this process (real libp2p hosts over TCP with
Noise; the first is every other node's bootstrap peer) and measures:
- discovery_s: from starting the nodes until every node lists every other one;
- directory_propagation_s: from creating a public session on the last node until every
  other node's /api/directory lists it;
- peer_loss_silence_s: the last node stops without a word; how long each other node had
  heard nothing from it when it dropped it (measured by the nodes: their ``departed`` list),
  the worst of them. The tests only check that a dead peer is dropped at all; this is the
  speed figure (peer_ttl_s is 1.75 s).

Then the bridge: two nodes A and B (this process), a session hosted on B, two musicians
clicking at each other (the click machinery of bench/jam_latency.py). Mouth-to-ear latency
is measured with both musicians on B (baseline) and with one on A, bridged to B (one
node-to-node hop each way, each node mixing for its own listener), in alternating trials
with fresh connections. bridge_added_ms_p50/p99 are the bridged percentiles minus the
baseline ones. Both nodes and both clients share this process's 2 cores.
Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from eth_account import Account

from bench.clicks import WARMUP_S, ClickSource, onsets, percentile
from client.session import ArraySink, ClientError, JamClient
from node.app import Node
from node.config import load_config

BINAURAL = False


def config(data: Path, bootstrap: list[str]):  # type: ignore[no-untyped-def]
    return load_config(None, {"http": {"port": 0}, "data_dir": str(data), "chain": {"mode": "off"},
                              "ai": {"enabled": False}, "spatial": {"binaural": BINAURAL},
                              "p2p": {"listen": "/ip4/127.0.0.1/tcp/0", "bootstrap": bootstrap}},
                       environ={})  # fmt: skip


async def until(predicate, timeout_s: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise TimeoutError("the network did not settle")


async def one_run(count: int, tmp: Path) -> tuple[float, float, float]:
    async with aiohttp.ClientSession() as http:
        first = Node(config(tmp / "n0", []))
        await first.start()
        assert first.p2p is not None
        started = time.monotonic()
        nodes = [first]
        for i in range(1, count):
            node = Node(config(tmp / f"n{i}", first.p2p.addrs()))
            await node.start()
            nodes.append(node)

        async def get(node: Node, path: str):  # type: ignore[no-untyped-def]
            async with http.get(node.url.rstrip("/") + path) as response:
                return await response.json()

        async def all_see_all() -> bool:
            views = await asyncio.gather(*(get(n, "/api/network") for n in nodes))
            return all(len(v["peers"]) == count - 1 for v in views)

        await until(all_see_all)
        discovery = time.monotonic() - started
        async with JamClient(nodes[-1].url, Account.create(), "bench") as owner:
            session = await owner.create_session("bench")
        created = time.monotonic()

        async def listed() -> bool:
            dirs = await asyncio.gather(*(get(n, "/api/directory") for n in nodes[:-1]))
            return all(any(e["id"] == session["id"] for e in d["sessions"]) for d in dirs)

        await until(listed)
        propagation = time.monotonic() - created
        gone = nodes.pop()
        gone_id = gone.p2p.peer_id if gone.p2p else ""
        await gone.stop()

        async def dropped() -> bool:
            views = await asyncio.gather(*(get(n, "/api/network") for n in nodes))
            return all(all(p["peer_id"] != gone_id for p in v["peers"]) for v in views)

        await until(dropped)
        views = await asyncio.gather(*(get(n, "/api/network") for n in nodes))
        silence = max(
            d["silent_s"] for v in views for d in v["departed"] if d["peer_id"] == gone_id
        )
        for node in reversed(nodes):
            await node.stop()
        return discovery, propagation, silence


def m2e_ms(source: ClickSource, sink: ArraySink, started: float) -> list[float]:
    """Mouth-to-ear latency of every click from ``source`` heard in ``sink``."""
    out = []
    for ear, pitch in onsets(sink):
        click, mouth = pitch, None
        while (t := source.send_time(click)) is not None and t < ear:
            mouth = t
            click += 4
        if mouth is not None and mouth - started > WARMUP_S:
            out.append((ear - mouth) * 1000)
    return out


async def listed(node: Node, session_id: str) -> None:
    """Wait until ``node``'s directory lists the session (gossip, so poll)."""
    assert node.p2p is not None
    for _ in range(1200):
        if any(e["id"] == session_id for e in node.p2p.directory()):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the session never reached the other node's directory")


async def bridge_trial(a: Node, b: Node, bridged: bool, seconds: float) -> list[float]:
    """Latencies both ways between two musicians, on B/B or A/B."""
    async with (
        JamClient(b.url, Account.create(), "host") as x,
        JamClient((a if bridged else b).url, Account.create(), "guest") as y,
    ):
        session = await x.create_session("bridge bench")
        if bridged:
            await listed(a, session["id"])
        await x.join(session["id"])
        await y.join(session["id"])
        frame = 48 * int(session["frame_ms"])  # the session's frame size, in samples
        sx, sy, kx, ky = ClickSource(frame), ClickSource(frame), ArraySink(), ArraySink()
        await x.connect(sx, kx)
        await y.connect(sy, ky)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        try:
            await x.request("DELETE", f"/api/sessions/{session['id']}", auth=True)
        except ClientError as exc:  # the figures stand; say what happened to the session
            print(f"[bridge] closing the trial's session: {exc}", file=sys.stderr)
    return m2e_ms(sx, ky, started) + m2e_ms(sy, kx, started)


async def bridge_latency(tmp: Path, trials: int, seconds: float) -> dict[str, float]:
    b = Node(config(tmp / "b", []))
    await b.start()
    assert b.p2p is not None
    a = Node(config(tmp / "a", b.p2p.addrs()))
    await a.start()
    same: list[float] = []
    bridged: list[float] = []
    try:
        for trial in range(trials):
            for kind, out in (("same node", same), ("bridged", bridged)):
                got = await bridge_trial(a, b, kind == "bridged", seconds)
                out.extend(got)
                print(f"bridge trial {trial + 1}/{trials} {kind}: {len(got)} clicks, "
                      f"p50 {percentile(got, 50):.1f} ms", file=sys.stderr)  # fmt: skip
    finally:
        await a.stop()
        await b.stop()
    return {
        "same_node_m2e_ms_p50": round(percentile(same, 50), 1),
        "same_node_m2e_ms_p99": round(percentile(same, 99), 1),
        "bridged_m2e_ms_p50": round(percentile(bridged, 50), 1),
        "bridged_m2e_ms_p99": round(percentile(bridged, 99), 1),
        "bridge_added_ms_p50": round(percentile(bridged, 50) - percentile(same, 50), 1),
        "bridge_added_ms_p99": round(percentile(bridged, 99) - percentile(same, 99), 1),
        "bridge_clicks": len(bridged),
        "same_node_clicks": len(same),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bridge-trials", type=int, default=4)
    parser.add_argument("--bridge-seconds", type=float, default=14.0)
    args = parser.parse_args()
    discovery, propagation, silences = [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            d, p, lost = await one_run(args.nodes, Path(tmp))
        print(
            f"run {run + 1}: discovery {d:.2f} s, directory {p:.2f} s, peer loss {lost:.2f} s",
            file=sys.stderr,
        )
        discovery.append(d)
        propagation.append(p)
        silences.append(lost)
    with tempfile.TemporaryDirectory() as tmp:
        bridge = await bridge_latency(Path(tmp), args.bridge_trials, args.bridge_seconds)
    print(
        json.dumps(
            {
                "nodes": args.nodes,
                "runs": args.runs,
                f"discovery_s_{args.nodes}_nodes": round(statistics.median(discovery), 3),
                "directory_propagation_s": round(statistics.median(propagation), 3),
                "discovery_s_all": [round(x, 3) for x in discovery],
                "directory_propagation_s_all": [round(x, 3) for x in propagation],
                "peer_loss_silence_s": round(statistics.median(silences), 3),
                "peer_loss_silence_s_all": [round(x, 3) for x in silences],
                **bridge,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
