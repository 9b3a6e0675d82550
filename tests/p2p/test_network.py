"""Real nodes with real libp2p hosts on loopback: discovery, the directory, failure, bad gossip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account import Account

from client.session import JamClient
from node.app import Node
from node.p2p.advert import Advert, encode
from tests.conftest import node_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def p2p_config(data: Path, bootstrap: list[str]) -> Any:
    return node_config(
        data, p2p={"enabled": True, "listen": "/ip4/127.0.0.1/tcp/0", "bootstrap": bootstrap}
    )


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


async def get(http: aiohttp.ClientSession, node: Node, path: str) -> Any:
    async with http.get(node.url.rstrip("/") + path) as response:
        assert response.status == 200
        return await response.json()


async def test_nodes_find_each_other_share_sessions_and_notice_failure(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http, Node(p2p_config(tmp_path / "a", [])) as a:
        assert a.p2p is not None
        seed = a.p2p.addrs()
        assert seed and all("/p2p/" in addr for addr in seed)
        b = Node(p2p_config(tmp_path / "b", seed))
        c = Node(p2p_config(tmp_path / "c", seed))
        await b.start()
        await c.start()
        try:
            # Everyone sees everyone (C learns B through A's gossip).
            async def all_see_all() -> bool:
                for node in (a, b, c):
                    view = await get(http, node, "/api/network")
                    if len(view["peers"]) != 2:
                        return False
                return True

            await until(all_see_all)

            # Each node also finds the others as providers of the jamnet key in the DHT.
            async def in_the_dht() -> bool:
                for node in (a, b, c):
                    dht = (await get(http, node, "/api/network"))["dht"]
                    if dht["providers"] < 2 or dht["errors"]:
                        return False
                return True

            await until(in_the_dht, timeout_s=40)
            # A session created on B is listed on A and C, with B's URL.
            async with JamClient(b.url, Account.create(), "owner") as owner:
                session = await owner.create_session("cross-node jam", tempo_bpm=101)

            async def listed() -> bool:
                for node in (a, c):
                    entries = (await get(http, node, "/api/directory"))["sessions"]
                    if not any(
                        e["id"] == session["id"]
                        and e["node"] == b.url.replace("localhost", "127.0.0.1")
                        for e in entries
                    ):
                        return False
                return True

            await until(listed)
            # B dies: A and C drop it after the peer TTL of silence.
            b_id = b.p2p.peer_id if b.p2p else ""
            await b.stop()

            async def b_gone() -> bool:
                for node in (a, c):
                    view = await get(http, node, "/api/network")
                    if any(p["peer_id"] == b_id for p in view["peers"]):
                        return False
                return True

            await until(b_gone, timeout_s=60.0)
            # Measured by the node, not by this test's polling: how long it had heard nothing
            # from B when it dropped it.
            for node in (a, c):
                departed = (await get(http, node, "/api/network"))["departed"]
                silences = [d["silent_s"] for d in departed if d["peer_id"] == b_id]
                # It waited for the peer TTL of silence, and no more than a load-proof bound:
                # the speed is bench/p2p.py's peer_loss_silence_s.
                assert silences and 1.0 < max(silences) < 30.0, silences
            entries = (await get(http, a, "/api/directory"))["sessions"]
            assert not any(e["id"] == session["id"] for e in entries)
            # B comes back with the same identity and rejoins.
            b = Node(p2p_config(tmp_path / "b", seed))
            await b.start()
            assert b.p2p is not None and b.p2p.peer_id == b_id

            async def b_back() -> bool:
                view = await get(http, a, "/api/network")
                return any(p["peer_id"] == b_id for p in view["peers"])

            await until(b_back)
        finally:
            await b.stop()
            await c.stop()


async def test_bad_gossip_is_counted_and_dropped(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http, Node(p2p_config(tmp_path / "a", [])) as a:
        assert a.p2p is not None
        async with Node(p2p_config(tmp_path / "m", a.p2p.addrs())) as mallory:
            assert mallory.p2p is not None and mallory.p2p.host is not None

            async def sees() -> bool:
                return len((await get(http, a, "/api/network"))["peers"]) == 1

            await until(sees)
            host = mallory.p2p.host
            forged = Advert(
                a.p2p.peer_id, "http://evil.example/", "0", 1, 0, (), 10**9, time.time()
            )
            bad = [
                b"not json at all",
                b'{"body": {}, "pubkey": "00", "sig": "00"}',
                b"x" * 40_000,
                encode(forged, mallory.p2p.key_pair.private_key),  # speaks for A's peer id
            ]
            good = encode(
                Advert(mallory.p2p.peer_id, "http://127.0.0.1:1/", "0", 1, 0, (), 1, time.time()),
                mallory.p2p.key_pair.private_key,
            )
            tampered = good.replace(b"http://127.0.0.1:1/", b"http://127.0.0.1:2/")
            bad.append(tampered)
            for data in bad:
                assert mallory.p2p.bridge is not None
                await mallory.p2p.bridge.call(host.publish_raw, data)
                await asyncio.sleep(0.05)

            async def counted() -> bool:
                rejected = (await get(http, a, "/api/network"))["rejected"]
                return sum(rejected.values()) >= len(bad)

            await until(counted)
            rejected = (await get(http, a, "/api/network"))["rejected"]
            assert rejected.get("malformed", 0) >= 2
            assert rejected.get("wrong_peer", 0) >= 1
            assert rejected.get("bad_signature", 0) >= 1
            status = await get(http, a, "/api/health")
            assert status
            async with http.get(a.url + "metrics") as response:
                text = await response.text()
            assert 'jamnet_p2p_rejected_adverts_total{reason="wrong_peer"}' in text
            assert "jamnet_p2p_peers 1.0" in text
            # A's own entry was not overwritten by the forgery.
            view = await get(http, a, "/api/network")
            assert all(p["http_url"] != "http://evil.example/" for p in view["peers"])


async def test_adverts_carry_the_registration_status(tmp_path: Path) -> None:
    config = node_config(
        tmp_path / "a",
        chain={"mode": "devnet", "devnet_port": 0},
        p2p={"enabled": True, "listen": "/ip4/127.0.0.1/tcp/0"},
    )
    async with aiohttp.ClientSession() as http, Node(config) as a:
        assert a.p2p is not None
        async with Node(p2p_config(tmp_path / "b", a.p2p.addrs())) as b:

            async def b_sees_status() -> bool:
                peers = (await get(http, b, "/api/network"))["peers"]
                return bool(peers) and peers[0]["stake"] == "not registered"

            await until(b_sees_status, timeout_s=40)
            assert (await get(http, a, "/api/network"))["self"]["stake"] == "not registered"
            assert (await get(http, b, "/api/network"))["self"]["stake"] is None  # no chain


async def test_a_second_node_on_the_same_p2p_port_is_refused(tmp_path: Path) -> None:
    import socket

    from node.errors import ConfigError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listen = f"/ip4/127.0.0.1/tcp/{port}"
    config = node_config(tmp_path / "a", p2p={"enabled": True, "listen": listen})
    async with Node(config):
        second = node_config(tmp_path / "b", p2p={"enabled": True, "listen": listen})
        with pytest.raises(ConfigError, match="another node probably runs there"):
            async with Node(second):
                pass
    async with Node(config):  # the port is free again after a stop
        pass
