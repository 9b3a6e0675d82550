"""Sessions nobody uses end: the rules (pure) and a real node applying them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from eth_account import Account

from client.session import ClientError, JamClient
from node.app import Node
from node.session.lifetime import Expiry, Lifetime
from tests.conftest import node_config


def test_empty_sessions_close_and_an_absent_owner_stops_the_bandmate() -> None:
    life = Lifetime(empty_expiry_s=60, ownerless_expiry_s=30)
    assert life.check(0, humans=0, owner_present=False, bandmate=False) is Expiry.KEEP
    assert life.seconds_left(10) == 50
    assert life.check(59, 0, False, False) is Expiry.KEEP
    assert life.check(60, 0, False, False) is Expiry.CLOSE
    # Somebody joining resets the clock; leaving starts it again.
    life = Lifetime(60, 30)
    life.check(0, 0, False, False)
    assert life.check(50, 1, False, False) is Expiry.KEEP and life.seconds_left(50) is None
    assert life.check(100, 0, False, False) is Expiry.KEEP
    assert life.check(159, 0, False, False) is Expiry.KEEP
    assert life.check(160, 0, False, False) is Expiry.CLOSE
    # The bandmate alone is nobody: it keeps no session open, and without the owner it stops.
    life = Lifetime(600, 30)
    assert life.check(0, 1, True, True) is Expiry.KEEP
    assert life.check(10, 1, False, True) is Expiry.KEEP  # a guest plays on, owner away
    assert life.check(39, 1, False, True) is Expiry.KEEP
    assert life.check(40, 1, False, True) is Expiry.STOP_BANDMATE
    assert life.check(41, 1, False, False) is Expiry.KEEP  # the guest keeps their session
    assert life.check(42, 1, True, True) is Expiry.KEEP  # the owner is back
    assert life.check(100, 1, True, True) is Expiry.KEEP


@pytest.fixture
async def short_node(tmp_path: Path) -> AsyncIterator[Node]:
    config = node_config(
        tmp_path / "data",
        session={"empty_expiry_s": 1, "sessions_per_owner": 2, "sessions_per_client": 3},
    )
    async with Node(config) as running:
        yield running


async def _status(http: aiohttp.ClientSession, node: Node, sid: str) -> int:
    async with http.get(f"{node.url}api/sessions/{sid}") as response:
        return response.status


async def test_limits_per_owner_and_address_and_empty_sessions_expire(short_node: Node) -> None:
    node = short_node
    async with (
        aiohttp.ClientSession() as http,
        JamClient(node.url, Account.create(), "flooder") as flooder,
        JamClient(node.url, Account.create(), "second key") as other,
    ):
        first = await flooder.create_session("one")
        await flooder.create_session("two")
        with pytest.raises(ClientError, match="429.*you own 2 sessions"):
            await flooder.create_session("three")
        await other.create_session("three")  # a new key, the same address: 3 of 3
        with pytest.raises(ClientError, match="429.*3 sessions were opened from your address"):
            await other.create_session("four")
        # A session someone is in stays; the empty ones close by themselves.
        await flooder.join(first["id"])
        deadline = time.monotonic() + 60
        while len((await flooder.request("GET", "/api/sessions"))["sessions"]) > 1:
            assert time.monotonic() < deadline, "empty sessions never expired"
            await asyncio.sleep(0.2)
        assert await _status(http, node, first["id"]) == 200
        await flooder.leave()
        while await _status(http, node, first["id"]) != 404:
            assert time.monotonic() < deadline, "an emptied session never expired"
            await asyncio.sleep(0.2)
        assert node.store is not None
        assert node.store.open_sessions() == []  # closed in the store too: no restart revival
        # The slots are free again.
        await other.create_session("again")


class _Faulty:
    """A lifetime whose check fails (a stand-in for any unexpected fault in one session)."""

    def check(self, *args: object) -> Expiry:
        raise RuntimeError("injected fault")


async def test_a_fault_in_one_session_does_not_stop_presence_for_the_others(
    short_node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    node = short_node
    assert node.service is not None
    async with JamClient(node.url, Account.create(), "owner") as owner:
        broken = await owner.create_session("broken")
        healthy = await owner.create_session("healthy")
        node.service._live[broken["id"]].lifetime = _Faulty()  # type: ignore[assignment]
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while await _status(http, node, healthy["id"]) != 404:
                assert time.monotonic() < deadline, "the healthy empty session never expired"
                await asyncio.sleep(0.2)
            assert await _status(http, node, broken["id"]) == 200
        assert "presence check failed" in caplog.text
