"""Recording: stems + mix on disk, stats in SQLite, a signed contribution record per take; a
killed node loses none of them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from eth_account import Account

from client.session import ArraySink, ArraySource, ClientError, JamClient
from node import records
from tests.conftest import band_rms, tone
from tests.e2e.test_cli_jam import read_line_matching

pytestmark = pytest.mark.slow


def start_node(data_dir: Path, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "JAMNET_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "node",
            "--port",
            str(port),
            "--chain",
            "off",
            "--no-ai",
            "--no-p2p",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    return proc, read_line_matching(proc, r"open (http\S+)")


async def wait_for(predicate, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met before the deadline")


async def test_kill_mid_recording_loses_no_finished_recording_or_stats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, url = start_node(data)
    try:
        async with (
            JamClient(url, Account.create(), "owner") as owner,
            JamClient(url, Account.create(), "guest") as guest,
        ):
            session = await owner.create_session("take one")
            sid = session["id"]
            await owner.join(sid)
            await guest.join(sid)
            await owner.connect(ArraySource(tone(440, 60), loop=True), ArraySink())
            await guest.connect(ArraySource(np.zeros(48000, np.float32)), ArraySink())
            await wait_for(lambda: _mix_is_flowing(owner, sid))

            first = (
                await owner.request(
                    "POST", f"/api/sessions/{sid}/recording", {"action": "start"}, auth=True
                )
            )["recording"]
            await asyncio.sleep(2.0)
            finished = await owner.request(
                "POST", f"/api/sessions/{sid}/recording", {"action": "stop"}, auth=True
            )
            assert finished["state"] == "finished" and finished["frames"] > 50
            stats = {c["name"]: c for c in finished["contributions"]}
            assert stats["owner"]["active_s"] > 0.5 and stats["owner"]["rms"] > 0.05
            assert stats["guest"]["active_s"] == 0.0
            sealed = finished["record"]
            assert "path" not in finished, "the API shows no file-system paths"
            assert records.verify(sealed) == sealed["signer"]
            checked = await owner.request("POST", "/api/records/verify", sealed)
            assert checked == {"valid": True, "signer": sealed["signer"]}
            forged = {**sealed, "record": {**sealed["record"], "contributors": [
                {**c, "levelShareBps": 10_000 - c["levelShareBps"]}
                for c in sealed["record"]["contributors"]
            ]}}  # fmt: skip
            with pytest.raises(ClientError, match="400"):
                await owner.request("POST", "/api/records/verify", forged)

            second = (
                await owner.request(
                    "POST", f"/api/sessions/{sid}/recording", {"action": "start"}, auth=True
                )
            )["recording"]

            async def stats_saved() -> bool:
                rows = await owner.request("GET", f"/api/sessions/{sid}/recordings")
                row = next(r for r in rows["recordings"] if r["id"] == second)
                return any(c["frames"] > 50 for c in row["contributions"])

            await wait_for(stats_saved)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)

    proc, url = start_node(data)
    try:
        async with JamClient(url, Account.create(), "reader") as reader:
            listing = await reader.request("GET", "/api/sessions")
            assert [s["id"] for s in listing["sessions"]] == [sid], "sessions survive restarts"
            rows = {
                r["id"]: r
                for r in (await reader.request("GET", f"/api/sessions/{sid}/recordings"))[
                    "recordings"
                ]
            }
            recovered = (await reader.request("GET", f"/api/recordings/{second}"))["record"]
            assert recovered is not None, "sealed at the restart"
            cli = [sys.executable, "-m", "node.cli", "recordings", "verify", "--node", url]
            ok = await asyncio.to_thread(
                subprocess.run, [*cli, second], capture_output=True, text=True, timeout=60
            )
            assert ok.returncode == 0 and f"signed by {recovered['signer']}" in ok.stdout
            forged_file = tmp_path / "forged.json"
            forged_file.write_text(json.dumps(forged))
            refused = await asyncio.to_thread(
                subprocess.run, [*cli, str(forged_file)], capture_output=True, text=True, timeout=60
            )
            assert refused.returncode == 2 and "signed by" in refused.stderr
            listing_cli = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "node.cli", "recordings", "list", sid, "--node", url],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert listing_cli.returncode == 0, listing_cli.stderr
            assert f"{first}  finished" in listing_cli.stdout
            assert f"{second}  recovered" in listing_cli.stdout
            rows = {
                r["id"]: r
                for r in (await reader.request("GET", f"/api/sessions/{sid}/recordings"))[
                    "recordings"
                ]
            }
    finally:
        proc.terminate()
        proc.communicate(timeout=15)

    takes = data / "recordings" / sid
    assert rows[first]["state"] == "finished"
    assert rows[first]["contributions"] == finished["contributions"]
    _check_files(takes / first, rows[first], expect_tone=True)
    _check_record(takes / first, sealed, finished)
    assert rows[second]["state"] == "recovered"
    assert rows[second]["frames"] > 50
    assert any(c["active_s"] > 0.5 for c in rows[second]["contributions"])
    _check_files(takes / second, rows[second], expect_tone=True)
    # The take the kill interrupted is sealed at the restart, by the same node key.
    assert rows[first]["sealed"] and rows[second]["sealed"]
    _check_record(takes / second, recovered, rows[second])
    assert recovered["signer"] == sealed["signer"]


async def _mix_is_flowing(client: JamClient, sid: str) -> bool:
    session = await client.request("GET", f"/api/sessions/{sid}")
    return (
        all(p["connected"] for p in session["participants"]) and len(session["participants"]) == 2
    )


def _check_record(directory: Path, sealed: dict[str, Any], row: dict[str, Any]) -> None:
    """The signed record matches the files on disk and the contribution figures."""
    assert records.verify(sealed) == sealed["signer"]
    record = sealed["record"]
    assert record["recordingId"] == row["id"]
    assert record["mixHash"] == records.file_hash(directory / "mix.wav") != records.ZERO_HASH
    figures = {c["address"]: c for c in row["contributions"]}
    assert {c["account"] for c in record["contributors"]} == set(figures)
    assert sum(c["levelShareBps"] for c in record["contributors"]) == 10_000
    for entry in record["contributors"]:
        stats = figures[entry["account"]]
        assert entry["stemHash"] == records.file_hash(directory / stats["stem"])
        assert entry["activeMs"] == round(stats["active_s"] * 1000)
        # The one playing a tone holds (nearly) all the level; the silent guest none.
        assert (
            entry["levelShareBps"] > 9_900 if stats["rms"] > 0.05 else entry["levelShareBps"] < 100
        )


def _check_files(directory: Path, row: dict[str, Any], expect_tone: bool) -> None:
    mix, rate = soundfile.read(str(directory / "mix.wav"), dtype="float32")
    assert rate == 48000 and mix.ndim == 2 and mix.shape[1] == 2
    assert mix.shape[0] >= 50 * row["frame_samples"], "at least 50 of the session's frames"
    stems = sorted(directory.glob("stem-*.wav"))
    assert len(stems) == 2
    lengths = set()
    loud = 0.0
    for stem in stems:
        audio, _ = soundfile.read(str(stem), dtype="float32")
        lengths.add(audio.shape[0])
        loud = max(loud, band_rms(audio, 440))
    assert len(lengths) == 1, "stems line up"
    if expect_tone:
        assert loud > 0.05
        assert band_rms(mix.mean(axis=1), 440) > 0.02
