"""Compose, improvise and the bandmate through a real node, with the shipped models."""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import mido
import numpy as np
import pytest
from eth_account import Account

from client.session import ArraySink, ArraySource, JamClient
from node.ai.midi import to_midi
from node.ai.registry import BUNDLED_DIR
from node.app import Node
from tests.api.test_api import call
from tests.conftest import node_config
from training.tokenize import Note


async def _ready(node: Node) -> None:
    assert node.ai is not None
    await node.ai.ready()


@pytest.fixture
async def ai_node(tmp_path: Path) -> AsyncIterator[Node]:
    async with Node(node_config(tmp_path / "data", ai={"enabled": True})) as running:
        await _ready(running)
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_models_compose_and_improvise(ai_node: Node, http: aiohttp.ClientSession) -> None:
    status, info = await call(http, ai_node, "GET", "/api/ai/models")
    assert status == 200 and info["status"] == "ready"
    assert {"composer", "improviser", "chorale"} <= set(info["models"])

    seed = "E4:4 D4:4 C4:4 D4:4 E4:4 E4:4 E4:8"
    body = {"seed": seed, "key": "C", "notes": 24, "random_seed": 3}
    status, out = await call(http, ai_node, "POST", "/api/ai/compose", json=body)
    assert status == 200, out
    notes = out["notes"]
    assert 0 < len(notes) <= 24 and notes[0]["onset"] == 32  # right after the seed
    assert all(n["pitch"] is None or 36 <= n["pitch"] <= 96 for n in notes)
    midi = mido.MidiFile(file=io.BytesIO(base64.b64decode(out["midi_base64"])))
    assert sum(m.type == "note_on" and m.velocity > 0 for m in midi.tracks[0]) == sum(
        n["pitch"] is not None for n in notes
    )
    # The same seed and random_seed give the same continuation.
    assert (await call(http, ai_node, "POST", "/api/ai/compose", json=body))[1]["notes"] == notes

    # A MIDI file as the seed, a MIDI file back.
    seed_midi = to_midi([Note(i * 4, 4, p) for i, p in enumerate((67, 69, 71, 72))], 100)
    async with http.post(
        ai_node.url + "api/ai/compose?format=midi&key=G&notes=8",
        data=seed_midi,
        headers={"Content-Type": "audio/midi"},
    ) as response:
        assert response.status == 200 and response.content_type == "audio/midi"
        back = mido.MidiFile(file=io.BytesIO(await response.read()))
        assert any(m.type == "note_on" for m in back.tracks[0])

    body = {"chords": "Am F C G", "key": "Am", "density": 0.5, "random_seed": 1}
    status, out = await call(http, ai_node, "POST", "/api/ai/improvise", json=body)
    assert status == 200 and out["bars"] == 4
    assert out["notes"] and all(0 <= n["onset"] < 64 for n in out["notes"])
    assert all(n["onset"] + n["duration"] <= 64 for n in out["notes"])


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/ai/compose", {}, "seed must be notes"),
        ("/api/ai/compose", {"seed": "C4:4 X9"}, "'X9' is not a note"),
        ("/api/ai/compose", {"seed": "C4:99"}, "1-64 sixteenths"),
        ("/api/ai/compose", {"seed": "C4", "notes": 100000}, "notes must be between"),
        ("/api/ai/compose", {"seed": "C4", "key": "H"}, "key must be"),
        ("/api/ai/compose", {"seed": "C4", "random_seed": -1}, "random_seed"),
        ("/api/ai/improvise", {"chords": "C Q"}, "'Q' is not a chord"),
        ("/api/ai/improvise", {"chords": ""}, "progression"),
        ("/api/ai/improvise", {"chords": "C " * 65}, "at most 64"),
        ("/api/ai/improvise", {"chords": "C", "density": 7}, "density must be between"),
        ("/api/ai/compose", {"seed": "C4", "time_signature": "5/5"}, "time_signature"),
        ("/api/ai/compose", {"seed": "C4", "pickup_beats": 4}, "pickup_beats must be 0 to"),
        ("/api/ai/compose", {"seed": "C4", "pickup_beats": 0.3}, "sixteenth grid"),
    ],
)
async def test_bad_requests_are_refused_clearly(ai_node, http, path, body, message) -> None:
    status, out = await call(http, ai_node, "POST", path, json=body)
    assert status == 400 and message in out["error"]


async def test_bad_midi_and_nan_are_refused(ai_node: Node, http: aiohttp.ClientSession) -> None:
    async with http.post(
        ai_node.url + "api/ai/compose", data=b"MThd garbage", headers={"Content-Type": "audio/midi"}
    ) as response:
        assert response.status == 400 and "MIDI" in (await response.json())["error"]
    async with http.post(
        ai_node.url + "api/ai/improvise",
        data=b'{"chords": "C", "density": NaN}',
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
    status, info = await call(http, ai_node, "GET", "/api/ai/models")
    assert status == 200 and info["status"] == "ready"  # still serving


async def test_a_tampered_checkpoint_leaves_the_node_up_without_ai(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    models = tmp_path / "models"
    shutil.copytree(BUNDLED_DIR, models)
    weights = models / "composer.pt"
    data = bytearray(weights.read_bytes())
    data[-64] ^= 0xFF
    weights.write_bytes(bytes(data))
    config = node_config(tmp_path / "data", ai={"enabled": True, "models_dir": str(models)})
    async with Node(config) as running:
        await _ready(running)
        status, info = await call(http, running, "GET", "/api/ai/models")
        assert info["status"] == "failed" and "refusing" in info["error"]
        status, out = await call(
            http, running, "POST", "/api/ai/compose", json={"seed": "C4:4 D4:4"}
        )
        assert status == 503 and "SHA-256" in out["error"]
        status, _ = await call(http, running, "GET", "/api/health")
        assert status == 200


async def _wait(predicate: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met before the deadline")


async def test_the_owner_adds_a_bandmate_that_listeners_hear(
    ai_node: Node, http: aiohttp.ClientSession
) -> None:
    async with (
        JamClient(ai_node.url, Account.create(), "owner") as owner,
        JamClient(ai_node.url, Account.create(), "guest") as guest,
    ):
        session = await owner.create_session("with a bandmate", tempo_bpm=140, key="G")
        sid = session["id"]
        await owner.join(sid)
        await guest.join(sid)
        path = f"/api/sessions/{sid}/bandmate"
        status, out = await call(http, ai_node, "POST", path, guest.token, json={})
        assert status == 403
        status, out = await call(
            http, ai_node, "POST", path, owner.token, json={"instrument": "theremin"}
        )
        assert status == 400 and "instrument must be one of" in out["error"]
        status, out = await call(
            http, ai_node, "PATCH", f"/api/sessions/{sid}", owner.token, json={"chords": "G Em C D"}
        )
        assert status == 200 and out["chords"] == "G Em C D"
        status, out = await call(
            http,
            ai_node,
            "POST",
            path,
            owner.token,
            json={"instrument": "vibes", "density": 0.6, "x": 3, "y": 2},
        )
        assert status == 201, out
        status, _ = await call(http, ai_node, "POST", path, owner.token, json={})
        assert status == 409

        sink = ArraySink()
        await guest.connect(ArraySource(np.zeros(48000, np.float32), loop=True), sink)

        async def hears_the_bandmate() -> bool:
            audio = sink.audio()
            return len(audio) > 48000 and float(np.sqrt(np.mean(audio[-48000:] ** 2))) > 0.005

        await _wait(hears_the_bandmate)
        async with http.get(ai_node.url + "metrics") as response:
            text = await response.text()
        assert "jamnet_bandmates 1.0" in text and "jamnet_ai_ready 1.0" in text
        bars = next(
            float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("jamnet_bandmate_bars_total ")
        )
        assert bars >= 2
        shown = (await call(http, ai_node, "GET", f"/api/sessions/{sid}"))[1]
        bots = [p for p in shown["participants"] if p["kind"] == "ai"]
        assert len(bots) == 1 and (bots[0]["x"], bots[0]["y"]) == (3, 2)
        assert shown["bandmate"]["instrument"] == "vibes"

        status, out = await call(
            http, ai_node, "PATCH", path, owner.token, json={"density": 0.2, "instrument": "organ"}
        )
        assert status == 200 and out["instrument"] == "organ" and out["density"] == 0.2
        status, _ = await call(http, ai_node, "DELETE", path, owner.token)
        assert status == 200
        shown = (await call(http, ai_node, "GET", f"/api/sessions/{sid}"))[1]
        assert shown["bandmate"] is None
        assert all(p["kind"] == "human" for p in shown["participants"])
        status, _ = await call(http, ai_node, "DELETE", path, owner.token)
        assert status == 404


async def test_the_cli_writes_midi_files(ai_node: Node, tmp_path: Path) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "node.cli", *args, "--node", ai_node.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    solo = tmp_path / "solo.mid"
    done = await asyncio.to_thread(
        cli, "improvise", "--chords", "Dm G C", "--key", "C", "-o", str(solo)
    )
    assert done.returncode == 0, done.stderr
    assert mido.MidiFile(str(solo)).length > 0
    more = tmp_path / "more.mid"
    done = await asyncio.to_thread(
        cli, "compose", "--seed", "G4:4 A4:4 B4:8", "--key", "G", "--notes", "12", "-o", str(more)
    )
    assert done.returncode == 0, done.stderr
    done = await asyncio.to_thread(cli, "compose", "--seed-midi", str(more), "-o", str(more))
    assert done.returncode == 0, done.stderr
    done = await asyncio.to_thread(cli, "improvise", "--chords", "C Zz", "-o", str(solo))
    assert done.returncode != 0 and "'Zz' is not a chord" in done.stderr


async def test_the_bandmate_stops_when_its_owner_is_gone(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", ai={"enabled": True}, session={"ownerless_expiry_s": 1})
    async with (
        Node(config) as node,
        aiohttp.ClientSession() as http,
        JamClient(node.url, Account.create(), "owner") as owner,
        JamClient(node.url, Account.create(), "guest") as guest,
    ):
        await _ready(node)
        sid = (await owner.create_session("owner steps out"))["id"]
        await owner.join(sid)
        await guest.join(sid)
        path = f"/api/sessions/{sid}/bandmate"
        status, out = await call(http, node, "POST", path, owner.token, json={})
        assert status == 201, out
        await asyncio.sleep(1.5)  # longer than the expiry: the owner is here, so it plays on
        shown = (await call(http, node, "GET", f"/api/sessions/{sid}"))[1]
        assert shown["bandmate"] is not None
        await owner.leave()

        async def bandmate_gone() -> bool:
            shown = (await call(http, node, "GET", f"/api/sessions/{sid}"))[1]
            kinds = [p["kind"] for p in shown["participants"]]
            assert node.ai is not None
            playing = node.ai.stats()["bandmates"]
            return shown["bandmate"] is None and kinds == ["human"] and playing == 0.0

        await _wait(bandmate_gone)  # and the guest keeps the session


async def test_density_sets_notes_per_bar_across_its_range(
    ai_node: Node, http: aiohttp.ClientSession
) -> None:
    chords = "C G Am F C F G C"
    means = []
    for density in (0.0, 0.25, 0.5, 0.75, 1.0):
        counts = []
        for random_seed in (1, 2, 3):
            body = {"chords": chords, "density": density, "random_seed": random_seed}
            status, out = await call(http, ai_node, "POST", "/api/ai/improvise", json=body)
            assert status == 200, out
            counts.append(sum(n["pitch"] is not None for n in out["notes"]) / 8)
        mean = sum(counts) / len(counts)
        assert abs(mean - (1 + 11 * density)) <= 1.0, (density, counts)  # the stated target
        means.append(mean)
    assert means == sorted(means) and means[-1] >= means[0] + 9, means


async def test_compose_takes_a_metre_and_a_pickup_and_says_when_it_ended_early(
    ai_node: Node, http: aiohttp.ClientSession
) -> None:
    seed = "D4:2 E4:2 F#4:4 A4:4 D5:4"
    replies = []
    for random_seed in range(8):
        body = {"seed": seed, "key": "D", "notes": 256, "random_seed": random_seed,
                "time_signature": "6/8", "pickup_beats": 1}  # fmt: skip
        status, out = await call(http, ai_node, "POST", "/api/ai/compose", json=body)
        assert status == 200, out
        assert out["time_signature"] == "6/8" and out["pickup_beats"] == 1
        assert out["requested"] == 256
        assert out["ended_early"] == (len(out["notes"]) < 256)
        assert ("why" in out) == out["ended_early"]
        replies.append(out)
    early = [r for r in replies if r["ended_early"]]
    assert early, "the model ended none of eight pieces before 256 notes"
    assert "the model ended the piece after" in early[0]["why"]
    status, out = await call(
        http, ai_node, "POST", "/api/ai/compose", json={"seed": seed, "session": "nope"}
    )
    assert status == 404 and "no session" in out["error"]
    # The metre also comes from a session.
    async with JamClient(ai_node.url, Account.create(), "owner") as owner:
        sid = (await owner.create_session("waltz", time_signature="3/4"))["id"]
        body = {"seed": seed, "session": sid, "notes": 4, "random_seed": 1}
        status, out = await call(http, ai_node, "POST", "/api/ai/compose", json=body)
        assert status == 200 and out["time_signature"] == "3/4", out


async def test_compose_seeded_from_a_registered_work_marks_the_session_derived(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = node_config(tmp_path / "data", ai={"enabled": True}, chain={"mode": "devnet"})
    async with Node(config) as node, JamClient(node.url, Account.create(), "owner") as owner:
        await _ready(node)
        assert node.works is not None
        body = {"seed_work": 0, "notes": 8, "random_seed": 3}
        status, out = await call(http, node, "POST", "/api/ai/compose?format=json", json=body)
        assert status == 404 and "no melody of work 0" in out["error"]
        # The node keeps the melodies of the works it registers (tests/e2e registers one).
        node.works.lineage.save(0, [[60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65]])
        session = await owner.create_session("remix")
        sid = session["id"]
        await owner.join(sid)
        status, out = await call(
            http, node, "POST", "/api/ai/compose?format=json", json={**body, "session": sid}
        )
        assert status == 401, "marking a session derived needs one of its participants"
        status, out = await call(
            http,
            node,
            "POST",
            "/api/ai/compose?format=json",
            owner.token,
            json={**body, "session": sid},
        )
        assert status == 200 and out["seed_work"] == 0 and out["seed_notes"] == 12
        assert node.works.lineage.parents_for(sid) == [0]
        for bad in ("x", -1, True, 1.5):
            status, out = await call(
                http, node, "POST", "/api/ai/compose?format=json", json={**body, "seed_work": bad}
            )
            assert status == 400 and "seed_work" in out["error"]
        # The bandmate seeded from the work: it plays over the work's harmony, and the session
        # is derived from the work.
        jam = (await owner.create_session("bandmate remix", key="F#m"))["id"]
        await owner.join(jam)
        path = f"/api/sessions/{jam}/bandmate"
        for bad, code in (("zero", 400), (7, 404)):
            status, out = await call(http, node, "POST", path, owner.token, json={"seed_work": bad})
            assert status == code and "work" in out["error"], out
        assert node.works.lineage.parents_for(jam) == []
        status, out = await call(http, node, "POST", path, owner.token, json={"seed_work": 0})
        assert status == 201, out
        assert out["seed_work"] == 0 and out["key"] == "C" and out["chords"] == ["C", "G", "G"]
        shown = await owner.request("GET", f"/api/sessions/{jam}")
        assert (shown["key"], shown["chords"]) == ("C", "C G G")
        assert node.works.lineage.parents_for(jam) == [0]
