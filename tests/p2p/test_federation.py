"""Sessions that span nodes: real libp2p hosts signal real node-to-node aiortc links.

Node B hosts a session; a musician joins it through node A, another through B (and one
through C). Each hears the others' tones through its own node, the roster and poses follow,
a dead node's musicians leave the mixes within 2 s, and a node that comes back is bridged
again. Bad control messages and unknown streams are counted and dropped.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from client.session import ArraySink, ArraySource, JamClient
from node.app import Node
from tests.conftest import band_rms, node_config, tone
from tests.p2p.test_network import get, until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

A_HZ, B_HZ, C_HZ = 440.0, 660.0, 990.0


def p2p_config(data: Path, bootstrap: list[str]) -> Any:
    """A p2p node on loopback. Three nodes and three clients share this process (one GIL) on
    two cores: stereo panning, the cheapest Opus encoder and no DHT keep it within real time."""
    return node_config(
        data,
        p2p={
            "enabled": True,
            "listen": "/ip4/127.0.0.1/tcp/0",
            "bootstrap": bootstrap,
            "dht": False,
        },
        spatial={"binaural": False},
        media={"opus_complexity": 0},
    )


def hears(sink: ArraySink, freq: float, seconds: float = 1.0) -> bool:
    audio = sink.audio()
    window = int(48000 * seconds)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return len(audio) >= window and band_rms(audio[-window:], freq) > 0.005


async def discovered(http: aiohttp.ClientSession, nodes: list[Node], session_id: str) -> None:
    async def listed() -> bool:
        for node in nodes:
            entries = (await get(http, node, "/api/directory"))["sessions"]
            if not any(e["id"] == session_id for e in entries):
                return False
        return True

    await until(listed)


async def test_musicians_on_two_nodes_hear_each_other(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http, Node(p2p_config(tmp_path / "b", [])) as b:
        assert b.p2p is not None
        async with (
            Node(p2p_config(tmp_path / "a", b.p2p.addrs())) as a,
            JamClient(b.url, Account.create(), "bea") as on_b,
            JamClient(a.url, Account.create(), "ada") as on_a,
        ):
            assert a.p2p is not None
            sid = (await on_b.create_session("across nodes"))["id"]
            await discovered(http, [a], sid)
            await on_b.join(sid)
            joined = await on_a.join(sid)  # through A: A bridges the session from B
            assert joined["session"]["hosted_by"]["peer_id"] == b.p2p.peer_id
            sinks = {"a": ArraySink(), "b": ArraySink()}
            await on_b.connect(ArraySource(tone(B_HZ, 1.0), loop=True), sinks["b"])
            await on_a.connect(ArraySource(tone(A_HZ, 1.0), loop=True), sinks["a"])
            # A stands to the left of the stage: B hears it on the left.
            await on_a.control(type="pose", x=-3.0, y=0.0)

            async def both_hear() -> bool:
                return hears(sinks["b"], A_HZ) and hears(sinks["a"], B_HZ)

            try:
                await until(both_hear, timeout_s=30)
            except AssertionError:
                raise AssertionError(f"not heard: {diagnose(sinks, [a, b], sid)}") from None
            # Nobody hears themself (each node mixes only its own listeners, once).
            assert not hears(sinks["a"], A_HZ)
            assert not hears(sinks["b"], B_HZ)
            shown_b = await get(http, b, f"/api/sessions/{sid}")
            assert sorted(p["name"] for p in shown_b["participants"]) == ["ada", "bea"]
            ada = next(p for p in shown_b["participants"] if p["name"] == "ada")
            assert ada["via"] == a.p2p.peer_id

            async def ada_proven() -> bool:
                shown = await get(http, b, f"/api/sessions/{sid}")
                return next(p for p in shown["participants"] if p["name"] == "ada")["verified"]

            await until(ada_proven)  # B's challenge, signed by ada's own client through A
            assert (ada["x"], ada["y"]) == (-3.0, 0.0)
            audio = sinks["b"].audio()[-48000:]
            left, right = band_rms(audio[:, 0], A_HZ), band_rms(audio[:, 1], A_HZ)
            assert left > 2 * right, (left, right)
            status_a = await get(http, a, f"/api/sessions/{sid}")
            assert status_a["hosted_by"]["peer_id"] == b.p2p.peer_id
            # Owner-only acts are refused on the bridging node, with the host named.
            async with http.post(
                f"{a.url}api/sessions/{sid}/recording",
                json={"action": "start"},
                headers={"Authorization": f"Bearer {on_a.token}"},
            ) as response:
                assert response.status in (403, 409)
            # The host's tempo reaches the mirror.
            await on_b.request("PATCH", f"/api/sessions/{sid}", {"tempo_bpm": 133}, auth=True)

            async def tempo_followed() -> bool:
                return (await get(http, a, f"/api/sessions/{sid}"))["tempo_bpm"] == 133

            await until(tempo_followed)
            links = (await get(http, a, "/api/network"))["bridges"]["links"]
            assert [(k["session"], k["role"], k["open"]) for k in links] == [(sid, "mirror", True)]


async def test_the_host_relays_between_nodes_and_a_dead_node_is_dropped(tmp_path: Path) -> None:
    """One musician on C; A hears them through B (no link between A and C)."""
    async with aiohttp.ClientSession() as http, Node(p2p_config(tmp_path / "b", [])) as b:
        assert b.p2p is not None
        a = Node(p2p_config(tmp_path / "a", b.p2p.addrs()))
        c = Node(p2p_config(tmp_path / "c", b.p2p.addrs()))
        await a.start()
        await c.start()
        try:
            async with (
                JamClient(b.url, Account.create(), "bea") as on_b,
                JamClient(a.url, Account.create(), "ada") as on_a,
                JamClient(c.url, Account.create(), "cy") as on_c,
            ):
                sid = (await on_b.create_session("relay"))["id"]
                await discovered(http, [a, c], sid)
                await on_a.join(sid)  # A's musician only listens to the node's mixer here
                await on_c.join(sid)
                await on_c.connect(ArraySource(tone(C_HZ, 1.0), loop=True), ArraySink())
                assert a.service is not None

                async def a_mixes_cy() -> bool:
                    shown = await get(http, a, f"/api/sessions/{sid}")
                    cy = next((p for p in shown["participants"] if p["name"] == "cy"), None)
                    if cy is None:
                        return False
                    mixer = a.service.mixers()[sid] if a.service else None
                    slot = next(
                        (s for s in mixer.slots if s is not None and s.key == cy["id"]), None
                    ) if mixer else None  # fmt: skip
                    return slot is not None and slot.jitter.stats.played > 25

                await until(a_mixes_cy, timeout_s=30)
                network = await get(http, a, "/api/network")
                assert [k["peer_id"] for k in network["bridges"]["links"]] == [b.p2p.peer_id]
                await on_c.close()
            # C dies: B and A drop cy within 2 s.
            c_id = c.p2p.peer_id if c.p2p else None
            await c.stop()

            async def cy_gone() -> bool:
                for node in (a, b):
                    shown = await get(http, node, f"/api/sessions/{sid}")
                    if any(p["name"] == "cy" for p in shown["participants"]):
                        return False
                return True

            await until(cy_gone, timeout_s=5)
            # B drops its link to C, after under 2 s of silence (the node's own measure).
            federation = b.p2p.federation
            assert c_id is not None and federation is not None

            async def link_dropped() -> bool:
                return any(x["peer_id"] == c_id for x in federation.lost)

            await until(link_dropped, timeout_s=5)
            lost = [x for x in federation.lost if x["peer_id"] == c_id]
            assert all(x["silent_s"] < 2.0 for x in lost), lost
        finally:
            await a.stop()
            await c.stop()


def diagnose(sinks: dict[str, ArraySink], nodes: list[Node], sid: str) -> dict[str, object]:
    """What each node's links and mixer slots did (for a failure message)."""
    out: dict[str, object] = {"frames": {k: len(v.frames) for k, v in sinks.items()}}
    for node in nodes:
        if node.p2p and node.p2p.federation and node.service:
            mixer = node.service.mixers()[sid]
            out[node.url] = {
                "links": node.p2p.federation.summary(),
                "slots": [(s.key, s.jitter.stats) for s in mixer.slots if s is not None],
            }
    return out


async def test_the_host_restarting_is_survived_and_rejoined(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http, Node(p2p_config(tmp_path / "a", [])) as a:
        assert a.p2p is not None
        b = Node(p2p_config(tmp_path / "b", a.p2p.addrs()))
        await b.start()
        async with (
            JamClient(b.url, Account.create(), "bea") as on_b,
            JamClient(a.url, Account.create(), "ada") as on_a,
            JamClient(a.url, Account.create(), "al") as also_a,
        ):
            try:
                sid = (await on_b.create_session("host restarts"))["id"]
                await discovered(http, [a], sid)
                await on_b.join(sid)
                await on_a.join(sid)
                await also_a.join(sid)
                sinks = {name: ArraySink() for name in ("b", "a", "al")}
                await on_b.connect(ArraySource(tone(B_HZ, 1.0), loop=True), sinks["b"])
                await on_a.connect(ArraySource(tone(A_HZ, 1.0), loop=True), sinks["a"])
                await also_a.connect(ArraySource(tone(C_HZ, 1.0), loop=True), sinks["al"])
                await until(lambda: _true(hears(sinks["a"], B_HZ) and hears(sinks["b"], A_HZ)))

                await b.stop()  # the host goes away (its session is stored)

                async def bea_gone() -> bool:
                    shown = await get(http, a, f"/api/sessions/{sid}")
                    return not any(p["name"] == "bea" for p in shown["participants"])

                await until(bea_gone, timeout_s=5)
                assert a.p2p.federation is not None
                lost = list(a.p2p.federation.lost)
                assert lost and all(x["silent_s"] < 2.0 for x in lost), lost
                # The two on A still jam together.
                await until(
                    lambda: _true(
                        hears(sinks["a"], C_HZ)
                        and hears(sinks["al"], A_HZ)
                        and not hears(sinks["a"], B_HZ)
                    ),
                    timeout_s=15,
                )

                b = Node(p2p_config(tmp_path / "b", a.p2p.addrs()))
                await b.start()  # same data dir: the session is restored, A bridges again

                async def back_on_b() -> bool:
                    shown = await get(http, b, f"/api/sessions/{sid}")
                    names = sorted(p["name"] for p in shown["participants"])
                    return names == ["ada", "al"]

                await until(back_on_b, timeout_s=30)
                shown = await get(http, b, f"/api/sessions/{sid}")
                assert all(p["via"] == a.p2p.peer_id for p in shown["participants"])
            finally:
                await b.stop()


async def _true(value: bool) -> bool:
    return value


async def test_bad_bridge_input_is_counted_and_dropped(tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http, Node(p2p_config(tmp_path / "b", [])) as b:
        assert b.p2p is not None
        async with (
            Node(p2p_config(tmp_path / "a", b.p2p.addrs())) as a,
            JamClient(b.url, Account.create(), "bea") as on_b,
            JamClient(a.url, Account.create(), "ada") as on_a,
        ):
            assert a.p2p is not None and a.p2p.federation is not None
            assert a.p2p.host is not None and a.p2p.bridge is not None
            session = await on_b.create_session("public")
            private = await on_b.create_session("private", private=True)
            await discovered(http, [a], session["id"])
            # Unknown sessions, private sessions and junk requests are refused with a reason.
            status, body = await _join_status(http, a, "nope123")
            assert status == 404 and "any node it knows" in body["error"]
            host, bridge = a.p2p.host, a.p2p.bridge
            fake = "v=0\r\nm=audio 9 RTP 111\r\na=rtpmap:111 opus/48000/2\r\nm=application 9\r\n"
            answers = [
                await bridge.call(host.request, b.p2p.peer_id, [], request)
                for request in (
                    {"type": "bridge", "session": private["id"], "sdp": fake},
                    {"type": "bridge", "session": session["id"], "sdp": "not sdp"},
                    {"type": "gossip"},
                    {"type": "bridge", "session": "nope123", "sdp": fake},
                )
            ]
            assert [x["ok"] for x in answers] == [False] * 4
            assert "private sessions" in answers[0]["error"]
            # A stream for a protocol B does not speak is counted.
            from libp2p.custom_types import TProtocol
            from libp2p.host.exceptions import StreamFailure
            from libp2p.peer.id import ID

            async def unknown() -> None:
                with pytest.raises(StreamFailure):
                    await host.host.new_stream(
                        ID.from_base58(b.p2p.peer_id), [TProtocol("/evil/1.0.0")]
                    )

            await bridge.call(unknown)
            network = await get(http, b, "/api/network")
            assert network["unknown_protocols"] >= 1
            assert network["bridges"]["counters"]["bridge_refused"] == 4

            # Over an open link: junk control messages and unannounced streams are dropped.
            await on_b.join(session["id"])
            await on_a.join(session["id"])
            links = b.p2p.federation.links[session["id"]] if b.p2p.federation else {}
            (link,) = links.values()
            peer_link = a.p2p.federation.links[session["id"]][b.p2p.peer_id]
            assert peer_link.control is not None
            for junk in (
                "not json",
                json.dumps([1, 2]),
                json.dumps({"t": "pose", "s": 999, "x": 0, "y": 0}),
                json.dumps({"t": "join", "s": 5, "address": "0xnope", "name": "x"}),
                json.dumps({"t": "join", "s": 6, "address": Account.create().address,
                            "name": "x", "x": float("nan"), "y": 0}).replace("NaN", "1e999"),
                json.dumps({"t": "teleport", "s": 1}),
                "x" * 5000,
            ):  # fmt: skip
                peer_link.control.send(junk)
            assert peer_link._send_rtp(999, 1, 960, b"\xf8" * 40)  # a stream never announced
            assert peer_link._send_rtp(1, 2, 1920, b"")  # no payload

            async def counted() -> bool:
                counters = (await get(http, b, "/api/network"))["bridges"]["counters"]
                return (
                    counters.get("bad_control", 0) >= 7
                    and counters.get("unknown_stream", 0) >= 1
                    and counters.get("bad_audio", 0) >= 1
                )

            try:
                await until(counted)
            except AssertionError:
                counters = (await get(http, b, "/api/network"))["bridges"]["counters"]
                raise AssertionError(f"not counted: {counters}") from None
            assert link.opened.is_set()  # the link stays up
            shown = await get(http, b, f"/api/sessions/{session['id']}")
            assert sorted(p["name"] for p in shown["participants"]) == ["ada", "bea"]

            # A mirror that forges an address: heard, listed unverified, its "proof" refused,
            # and no contributor to a recording (ada, who proves hers, is one).
            await on_a.connect(ArraySource(tone(A_HZ, 1.0), loop=True), ArraySink())
            victim = Account.create()
            peer_link.control.send(
                json.dumps({"t": "join", "s": 40, "address": victim.address, "name": "forged",
                            "x": 1.0, "y": 0.0})
            )  # fmt: skip

            async def forged_listed() -> dict[str, Any] | None:
                shown = await get(http, b, f"/api/sessions/{session['id']}")
                return next((p for p in shown["participants"] if p["name"] == "forged"), None)

            async def forged_is_listed() -> bool:
                return await forged_listed() is not None

            await until(forged_is_listed)
            forged = await forged_listed()
            assert forged is not None
            assert forged["verified"] is False and forged["address"] == victim.address
            wrong = Account.create().sign_message(encode_defunct(text="jamnet bridge proof\n"))
            peer_link.control.send(
                json.dumps(
                    {"t": "proof", "s": 40, "signature": "0x" + bytes(wrong.signature).hex()}
                )
            )

            async def refused_proof() -> bool:
                counters = (await get(http, b, "/api/network"))["bridges"]["counters"]
                return counters.get("bad_proof", 0) >= 1

            await until(refused_proof)

            async def ada_proven() -> bool:
                shown = await get(http, b, f"/api/sessions/{session['id']}")
                return next(p for p in shown["participants"] if p["name"] == "ada")["verified"]

            await until(ada_proven)
            assert (await forged_listed() or {}).get("verified") is False
            path = f"/api/sessions/{session['id']}/recording"
            await on_b.request("POST", path, {"action": "start"}, auth=True)
            await asyncio.sleep(1.5)
            stopped = await on_b.request("POST", path, {"action": "stop"}, auth=True)
            contributors = {c["address"] for c in stopped["contributions"]}
            assert on_a.account.address in contributors
            assert victim.address not in contributors
            async with http.get(b.url + "metrics") as response:
                text = await response.text()
            assert 'jamnet_p2p_bridge_events_total{event="bad_control"}' in text
            assert "jamnet_p2p_unknown_protocols_total" in text


async def _join_status(
    http: aiohttp.ClientSession, node: Node, session_id: str
) -> tuple[int, dict[str, object]]:
    async with http.post(f"{node.url}api/sessions/{session_id}/join", json={}) as response:
        return response.status, await response.json()


def test_tone_helper_is_what_the_tests_think() -> None:
    sink = ArraySink()
    sink.write(np.stack([tone(A_HZ, 1.0)] * 2, axis=1))
    assert hears(sink, A_HZ) and not hears(sink, B_HZ)
