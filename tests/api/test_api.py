"""The JSON API against a real node: happy paths and every kind of bad input."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from client.session import ClientError, JamClient
from node.app import Node
from node.identity import invite_message, make_invite
from node.session import pressure
from tests.conftest import node_config


@pytest.fixture
async def small_node(tmp_path: Path) -> AsyncIterator[Node]:
    config = node_config(
        tmp_path / "data", session={"max_participants": 2}, http={"port": 0, "max_body_bytes": 8192}
    )
    async with Node(config) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, node: Node, method: str, path: str, token: str = "", **kwargs: Any
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(
        method, node.url.rstrip("/") + path, headers=headers, **kwargs
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_session_lifecycle(small_node: Node, http: aiohttp.ClientSession) -> None:
    async with (
        JamClient(small_node.url, Account.create(), "owner") as owner,
        JamClient(small_node.url, Account.create(), "guest") as guest,
    ):
        created = await owner.create_session("Blues", tempo_bpm=96, key="Em", time_signature="3/4")
        assert (created["tempo_bpm"], created["key"], created["time_signature"]) == (
            96,
            "Em",
            "3/4",
        )
        assert created["owner"] == owner.account.address
        status, listing = await call(http, small_node, "GET", "/api/sessions")
        assert status == 200 and [s["id"] for s in listing["sessions"]] == [created["id"]]
        await owner.join(created["id"])
        joined = await guest.join(created["id"])
        assert {p["name"] for p in joined["session"]["participants"]} == {"owner", "guest"}
        # Only the owner removes; the removed cannot come back.
        status, body = await call(
            http,
            small_node,
            "DELETE",
            f"/api/sessions/{created['id']}/participants/{owner.participant['id']}",
            guest.token,
        )
        assert status == 403 and "owner" in body["error"]
        status, _ = await call(
            http,
            small_node,
            "DELETE",
            f"/api/sessions/{created['id']}/participants/{guest.participant['id']}",
            owner.token,
        )
        assert status == 200
        with pytest.raises(ClientError, match="403.*removed"):
            await guest.join(created["id"])
        status, body = await call(
            http,
            small_node,
            "PATCH",
            f"/api/sessions/{created['id']}",
            owner.token,
            json={"tempo_bpm": 100},
        )
        assert status == 200 and body["tempo_bpm"] == 100
        await owner.leave()
        status, body = await call(http, small_node, "GET", f"/api/sessions/{created['id']}")
        assert body["participants"] == []


async def test_bad_input_gets_clear_errors_and_node_keeps_serving(
    small_node: Node, http: aiohttp.ClientSession
) -> None:
    node = small_node
    status, body = await call(http, node, "POST", "/api/sessions", data=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = await call(http, node, "POST", "/api/sessions", json=[1, 2])
    assert status == 400 and "JSON object" in body["error"]
    status, body = await call(http, node, "POST", "/api/sessions", data=b"x" * 20000)
    assert status == 413
    status, body = await call(http, node, "GET", "/api/sessions/nope")
    assert status == 404 and "no session" in body["error"]
    status, body = await call(http, node, "POST", "/api/challenges", json={"address": "0x12"})
    assert status == 400 and "address" in body["error"]
    for bad in (
        {"name": "", "tempo_bpm": 120},
        {"name": "x", "tempo_bpm": 1000},
        {"name": "x", "key": "H"},
        {"name": "x", "time_signature": "4/5"},
        {"name": "x", "private": "yes"},
    ):
        status, body = await call(http, node, "POST", "/api/sessions", json=bad)
        assert status == 400, bad

    alice = Account.create()
    status, issued = await call(
        http, node, "POST", "/api/challenges", json={"address": alice.address}
    )
    signature = alice.sign_message(encode_defunct(text=issued["message"])).signature.hex()
    wrong = Account.create().sign_message(encode_defunct(text=issued["message"])).signature.hex()
    create = {"name": "s", "address": alice.address, "nonce": issued["nonce"]}
    status, body = await call(
        http,
        node,
        "POST",
        "/api/sessions",
        json={**create, "signature": "0x" + wrong.removeprefix("0x")},
    )
    assert status == 401 and "not made by this address" in body["error"]
    # The challenge was spent by the failed attempt: a replay with the right key fails too.
    status, body = await call(
        http,
        node,
        "POST",
        "/api/sessions",
        json={**create, "signature": "0x" + signature.removeprefix("0x")},
    )
    assert status == 401 and "already used" in body["error"]

    async with (
        JamClient(node.url, alice, "a") as a,
        JamClient(node.url, Account.create(), "b") as b,
        JamClient(node.url, Account.create(), "c") as c,
    ):
        session = await a.create_session("full")
        await a.join(session["id"])
        await b.join(session["id"])
        with pytest.raises(ClientError, match="409.*full"):
            await c.join(session["id"])
        sid = session["id"]
        status, body = await call(
            http,
            node,
            "POST",
            f"/api/sessions/{sid}/control",
            a.token,
            data=b'{"type": "pose", "x": NaN, "y": 0}',
        )
        assert status == 400 and "NaN" in body["error"]
        status, body = await call(
            http,
            node,
            "POST",
            f"/api/sessions/{sid}/control",
            a.token,
            json={"type": "pose", "x": 11, "y": 0},
        )
        assert status == 400 and "between" in body["error"]
        status, body = await call(
            http,
            node,
            "POST",
            f"/api/sessions/{sid}/control",
            a.token,
            json={"type": "gain", "source": "nobody", "gain": 1},
        )
        assert status == 404
        status, body = await call(
            http,
            node,
            "POST",
            f"/api/sessions/{sid}/control",
            "bad",
            json={"type": "click", "on": True},
        )
        assert status == 403
        status, body = await call(
            http,
            node,
            "POST",
            f"/api/sessions/{sid}/rtc",
            a.token,
            json={"type": "offer", "sdp": "v=0\r\nnonsense"},
        )
        assert status == 400 and "Opus" in body["error"]
        status, body = await call(
            http,
            node,
            "POST",
            f"/api/sessions/{sid}/rtc",
            a.token,
            json={"type": "offer", "sdp": 12},
        )
        assert status == 400
        status, body = await call(
            http,
            node,
            "POST",
            f"/api/sessions/{sid}/rtc",
            a.token,
            json={"type": "offer", "sdp": "v=0" + "a" * 9000},
        )
        assert status == 413

    status, body = await call(http, node, "GET", "/api/health")
    assert status == 200 and body["status"] == "ok"


async def test_private_sessions_need_an_owner_invite(small_node: Node) -> None:
    owner_key, guest_key = Account.create(), Account.create()
    async with (
        JamClient(small_node.url, owner_key, "o") as owner,
        JamClient(small_node.url, guest_key, "g") as guest,
    ):
        session = await owner.create_session("secret", private=True)
        sid = session["id"]
        assert session["private"] is True
        with pytest.raises(ClientError, match="401.*invite"):
            await guest.join(sid)
        expires = int(time.time()) + 60
        message = invite_message(sid, guest_key.address, expires)
        signature = owner_key.sign_message(encode_defunct(text=message)).signature.hex()
        invite = make_invite(sid, guest_key.address, expires, "0x" + signature.removeprefix("0x"))
        joined = await guest.join(sid, invite)
        assert joined["participant"]["address"] == guest_key.address


async def test_health_and_metrics(node: Node, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, node, "GET", "/api/health")
    assert status == 200 and body["ticks"] >= 0
    async with http.get(node.url + "metrics") as response:
        text = await response.text()
    for name in (
        "jamnet_tick_seconds",
        "jamnet_tick_overruns",
        "jamnet_sessions",
        "jamnet_node_added_latency_seconds",
        "jamnet_late_tick_drains_total",
    ):
        assert name in text
    # This machine's kernel reports CPU pressure: so does the node, as a share of time.
    assert pressure.host.available
    (line,) = [x for x in text.splitlines() if x.startswith("jamnet_host_cpu_pressure ")]
    assert 0.0 <= float(line.split()[1]) <= 1.0


async def test_spatial_controls_room_and_restart(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = node_config(tmp_path / "data")
    async with Node(config) as node, JamClient(node.url, Account.create(), "owner") as owner:
        created = await owner.create_session("Hall")
        sid = created["id"]
        await owner.join(sid)
        assert created["room"] is None
        # Facing and binaural/room toggles go through the control endpoint.
        await owner.control(type="pose", yaw_deg=270.0, pitch_deg=10.0)
        await owner.control(type="pose", x=1.0, y=2.0)
        await owner.control(type="render", binaural=False, room=True)
        status, body = await call(http, node, "GET", f"/api/sessions/{sid}")
        me = body["participants"][0]
        assert (me["x"], me["y"], me["yaw_deg"], me["pitch_deg"]) == (1.0, 2.0, -90.0, 10.0)
        room = {"width_m": 12, "depth_m": 9, "height_m": 4, "absorption": 0.25}
        status, body = await call(
            http, node, "PATCH", f"/api/sessions/{sid}", owner.token, json={"room": room}
        )
        assert status == 200 and body["room"]["width_m"] == 12 and body["room"]["rt60_s"] > 0.5
        for bad, words in (
            ({"type": "pose", "yaw_deg": float("nan")}, "NaN"),
            ({"type": "pose", "yaw_deg": 400}, "yaw_deg"),
            ({"type": "pose", "pitch_deg": 91}, "pitch_deg"),
            ({"type": "pose"}, "needs"),
            ({"type": "render", "binaural": "yes"}, "true or false"),
            ({"type": "spin"}, "render"),
        ):
            status, body = await call(
                http,
                node,
                "POST",
                f"/api/sessions/{sid}/control",
                owner.token,
                data=json.dumps(bad).encode(),  # NaN is not valid JSON: python writes it anyway
            )
            assert status == 400 and words in body["error"], (bad, body)
        for bad_room, words in (
            ({"width_m": 1, "depth_m": 9}, "width_m"),
            ({"width_m": 10, "depth_m": 10, "absorption": 0}, "absorption"),
            ({"width_m": 10, "depth_m": 10, "colour": "red"}, "colour"),
            ("big", "object"),
        ):
            status, body = await call(
                http, node, "PATCH", f"/api/sessions/{sid}", owner.token, json={"room": bad_room}
            )
            assert status == 400 and words in body["error"], (bad_room, body)
    # The room is a session setting: it survives a node restart.
    async with Node(config) as node:
        status, body = await call(http, node, "GET", f"/api/sessions/{sid}")
        assert status == 200 and body["room"]["depth_m"] == 9


async def test_frame_size_is_chosen_at_creation_and_sets_the_admission_limit(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The owner picks 5, 10 or 20 ms; each frame size admits what the node measured it can
    hold (here a node configured for two musicians at 5 ms)."""
    config = node_config(tmp_path / "data", session={"max_participants_5ms": 2})
    async with Node(config) as node:
        keys = [Account.create() for _ in range(3)]
        async with (
            JamClient(node.url, keys[0], "a") as a,
            JamClient(node.url, keys[1], "b") as b,
            JamClient(node.url, keys[2], "c") as c,
        ):
            with pytest.raises(ClientError, match="frame_ms must be 5, 10 or 20"):
                await a.create_session("odd", frame_ms=7)
            default = await a.create_session("default")
            assert default["frame_ms"] == 10 and default["max_participants"] == 16
            small = await a.create_session("tight", frame_ms=5)
            assert small["frame_ms"] == 5 and small["max_participants"] == 2
            assert node.service is not None
            assert node.service.mixer(small["id"]).frame_samples == 240
            await a.join(small["id"])
            await b.join(small["id"])
            with pytest.raises(ClientError, match=r"409 session is full: 2 .* at 5 ms frames"):
                await c.join(small["id"])
            status, body = await call(
                http, node, "PATCH", f"/api/sessions/{small['id']}", a.token, json={"frame_ms": 10}
            )
            assert status == 400 and "frame_ms" in body["error"], "fixed for the session's life"


async def test_a_removed_participants_event_socket_is_closed(
    node: Node, http: aiohttp.ClientSession
) -> None:
    """Someone removed (or who leaves) stops receiving the session's events and chat."""
    async with (
        JamClient(node.url, Account.create(), "owner") as owner,
        JamClient(node.url, Account.create(), "guest") as guest,
    ):
        created = await owner.create_session("socks")
        await owner.join(created["id"])
        await guest.join(created["id"])
        base = node.url.replace("http", "ws", 1).rstrip("/")
        path = f"{base}/api/sessions/{created['id']}/events?token="
        async with (
            http.ws_connect(path + guest.token) as guest_ws,
            http.ws_connect(path + owner.token) as owner_ws,
        ):
            assert (await guest_ws.receive_json())["type"] == "session"
            assert (await owner_ws.receive_json())["type"] == "session"
            status, _ = await call(
                http, node, "DELETE",
                f"/api/sessions/{created['id']}/participants/{guest.participant['id']}",
                owner.token,
            )  # fmt: skip
            assert status == 200
            seen = []
            while True:
                message = await guest_ws.receive(timeout=10)
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                seen.append(json.loads(message.data))
            assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
            assert guest_ws.close_code == 1001
            lefts = [e for e in seen if e["type"] == "left"]
            assert lefts and lefts[-1]["reason"] == "removed by the owner"
            # The owner's socket carries on, and the guest's got nothing more.
            await owner.control(type="chat", text="after")
            while (event := await owner_ws.receive_json(timeout=10))["type"] != "chat":
                pass
            assert event["text"] == "after"
            assert not [e for e in seen if e["type"] == "chat"]
            assert node.service is not None
            assert node.service.events.subscribers(created["id"]) == 1
