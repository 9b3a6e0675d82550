"""The jamnet network on loopback: discovery and directory propagation, medians of runs.

    .venv/bin/python bench/p2p.py [--nodes 5] [--runs 3]

Each run starts ``--nodes`` real nodes in this process (real libp2p hosts over TCP with
Noise; the first is every other node's bootstrap peer) and measures:
- discovery_s: from starting the nodes until every node lists every other one;
- directory_propagation_s: from creating a public session on the last node until every
  other node's /api/directory lists it.
bridge_added_ms_* is null: sessions spanning nodes are not built yet.
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

from client.session import JamClient
from node.app import Node
from node.config import load_config


def config(data: Path, bootstrap: list[str]):  # type: ignore[no-untyped-def]
    return load_config(None, {"http": {"port": 0}, "data_dir": str(data), "chain": {"mode": "off"},
                              "ai": {"enabled": False},
                              "p2p": {"listen": "/ip4/127.0.0.1/tcp/0", "bootstrap": bootstrap}},
                       environ={})  # fmt: skip


async def until(predicate, timeout_s: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise TimeoutError("the network did not settle")


async def one_run(count: int, tmp: Path) -> tuple[float, float]:
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
        for node in reversed(nodes):
            await node.stop()
        return discovery, propagation


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    discovery, propagation = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            d, p = await one_run(args.nodes, Path(tmp))
        print(f"run {run + 1}: discovery {d:.2f} s, directory {p:.2f} s", file=sys.stderr)
        discovery.append(d)
        propagation.append(p)
    print(
        json.dumps(
            {
                "nodes": args.nodes,
                "runs": args.runs,
                f"discovery_s_{args.nodes}_nodes": round(statistics.median(discovery), 3),
                "directory_propagation_s": round(statistics.median(propagation), 3),
                "discovery_s_all": [round(x, 3) for x in discovery],
                "directory_propagation_s_all": [round(x, 3) for x in propagation],
                "bridge_added_ms_p50": None,
                "bridge_added_ms_p99": None,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
