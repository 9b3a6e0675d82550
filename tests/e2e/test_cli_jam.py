"""Two `jamnet jam` processes (real aiortc peers) play through a `jamnet node` process."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile

from tests.conftest import band_rms, tone

pytestmark = pytest.mark.slow
JAMNET = [sys.executable, "-m", "node.cli"]


def read_line_matching(proc: subprocess.Popen[str], pattern: str, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise AssertionError(f"process exited with {proc.returncode}")
            continue
        match = re.search(pattern, line)
        if match:
            return match.group(1)
    raise AssertionError(f"no line matching {pattern!r}")


@pytest.fixture
def node_process(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "JAMNET_DATA_DIR": str(tmp_path / "data")}
    with (tmp_path / "node.log").open("w") as log:
        proc = subprocess.Popen(
            [*JAMNET, "node", "--port", "0", "--chain", "off", "--no-ai", "--no-p2p"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        try:
            url = read_line_matching(proc, r"open (http\S+)")
            yield url
        finally:
            proc.terminate()
            proc.communicate(timeout=15)


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        result: dict[str, Any] = json.loads(reply.read())
        return result


def poll(predicate: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.1) -> Any:
    """Wait for ``predicate`` to be truthy (a generous deadline: the suite runs on busy CI)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(every_s)


def both(values: list[Any]) -> list[Any] | None:
    """``values`` once it holds two items (one per musician), else None."""
    return values if len(values) == 2 else None


def packet_ms(url: str) -> list[float]:
    """Each participant's inbound packet duration, as the node's /metrics reports it."""
    with urllib.request.urlopen(url + "metrics", timeout=10) as reply:
        text = reply.read().decode()
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("jamnet_packet_ms{")]  # fmt: skip


def nice_of(pid: int) -> int:
    """The nice value of a process's main thread (field 19 of its stat; its name has no
    spaces here)."""
    return int(Path(f"/proc/{pid}/stat").read_text().split()[18])


def jam(
    url: str, tmp: Path, name: str, session: str, wav_in: Path, wav_out: Path, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *JAMNET,
            "jam",
            session,
            "--node",
            url,
            "--name",
            name,
            "--input",
            str(wav_in),
            "--output",
            str(wav_out),
            "--keyfile",
            str(tmp / f"{name}.json"),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_tone_from_a_is_heard_by_b_at_its_pan_and_not_by_a(
    node_process: str, tmp_path: Path
) -> None:
    a_in, b_in = tmp_path / "a.wav", tmp_path / "b.wav"
    soundfile.write(str(a_in), tone(440, 12), 48000)
    soundfile.write(str(b_in), tone(660, 12), 48000)
    a_out, b_out = tmp_path / "a-out.wav", tmp_path / "b-out.wav"
    # A stands 3 m right of and 4 m in front of B (who is at the centre): pan = 3/5.
    a = jam(
        node_process,
        tmp_path,
        "alice",
        "duo",
        a_in,
        a_out,
        "--create",
        "--x",
        "3",
        "--y",
        "4",
        "--duration",
        "60",  # A plays until the test stops it, after B is done
    )
    session_id = read_line_matching(a, r"created session (\w+)")
    assert "--frame-ms" not in a.args
    # B listens through the stereo panner (exact pan check); A keeps the binaural default.
    b = jam(
        node_process, tmp_path, "bob", session_id, b_in, b_out, "--duration", "6", "--no-binaural"
    )
    _, b_err = b.communicate(timeout=60)
    assert b.returncode == 0, b_err
    a.terminate()  # SIGTERM: A leaves cleanly and writes what it heard
    _, a_err = a.communicate(timeout=60)
    assert a.returncode == 0, a_err

    heard, _ = soundfile.read(str(b_out), dtype="float32")
    tail = heard[-48000 * 2 :]
    left, right = band_rms(tail[:, 0], 440), band_rms(tail[:, 1], 440)
    theta = (0.6 + 1) * math.pi / 4
    assert right > 0.01, "B must hear A's tone"
    assert right / left == pytest.approx(math.tan(theta), rel=0.1)
    assert band_rms(tail[:, 0], 660) < 0.01 * right, "B must not hear itself"

    own, _ = soundfile.read(str(a_out), dtype="float32")
    # The 3 s of A's output where B is loudest: both were connected then, whenever that was.
    starts = range(0, max(1, own.shape[0] - 3 * 48000), 24000)
    best = max(starts, key=lambda i: band_rms(own[i : i + 3 * 48000, 0], 660))
    window = own[best : best + 3 * 48000]
    assert max(band_rms(window[:, 0], 660), band_rms(window[:, 1], 660)) > 0.01, "A hears B"
    assert band_rms(window.mean(axis=1), 440) < 0.002, "A must not hear itself"
    # Binaurally, B (behind A's left shoulder, azimuth -143°) is louder in A's left ear.
    assert band_rms(window[:, 0], 660) > 1.5 * band_rms(window[:, 1], 660)


@pytest.mark.parametrize("frame_ms", [5, 10])
def test_the_cli_round_trips_audio_at_small_frames(
    node_process: str, tmp_path: Path, frame_ms: int
) -> None:
    """A session made with --frame-ms: both CLIs send packets of that size (the node reads
    their duration from each packet), and B hears A's tone and not its own."""
    a_in, b_in = tmp_path / "a.wav", tmp_path / "b.wav"
    soundfile.write(str(a_in), tone(440, 12), 48000)
    soundfile.write(str(b_in), tone(660, 12), 48000)
    a = jam(
        node_process, tmp_path, "alice", "small", a_in, tmp_path / "a-out.wav",
        "--create", "--frame-ms", str(frame_ms), "--x", "3", "--duration", "60", "--quiet",
    )  # fmt: skip
    try:
        created = read_line_matching(a, r"created session (\w+ \(\d+ ms frames\))")
        session_id, announced = created.split()[0], int(created.split("(")[1].split()[0])
        assert announced == frame_ms
        assert get_json(f"{node_process}api/sessions/{session_id}")["frame_ms"] == frame_ms
        b_out = tmp_path / "b-out.wav"
        b = jam(
            node_process, tmp_path, "bob", session_id, b_in, b_out,
            "--duration", "8", "--no-binaural", "--quiet", "--nice", "0",
        )  # fmt: skip
        try:
            sizes = poll(lambda: both(packet_ms(node_process)), 40)
            assert sizes == [float(frame_ms)] * 2, sizes
            # A's audio loop (its main thread) asked for the default nice -10; B passed 0.
            assert [nice_of(p.pid) for p in (a, b)] == [-10, 0]
            _, b_err = b.communicate(timeout=60)
            assert b.returncode == 0, b_err
        finally:
            b.kill()
            b.communicate(timeout=30)
    finally:
        a.terminate()
        a.communicate(timeout=60)
    heard, _ = soundfile.read(str(b_out), dtype="float32")
    tail = heard[-48000 * 2 :]
    assert band_rms(tail[:, 1], 440) > 0.01, "B hears A's tone"
    assert band_rms(tail.mean(axis=1), 660) < 0.01 * band_rms(tail[:, 1], 440), "not itself"


def test_a_killed_cli_leaves_the_session_its_list_and_the_lobby(
    node_process: str, tmp_path: Path
) -> None:
    """SIGKILL says no goodbye: the node notices the silence, and the musician leaves the
    session, its list and the lobby (the time it takes is the node's to measure: see the
    log line; the test only waits with a generous deadline)."""
    a_in = tmp_path / "a.wav"
    soundfile.write(str(a_in), tone(440, 12), 48000)
    a = jam(
        node_process, tmp_path, "alice", "ghosts", a_in, tmp_path / "a-out.wav",
        "--create", "--loop", "--duration", "120", "--quiet",
    )  # fmt: skip
    try:
        session_id = read_line_matching(a, r"created session (\w+)")
        b = jam(
            node_process, tmp_path, "bob", session_id, a_in, tmp_path / "b-out.wav",
            "--loop", "--duration", "120", "--quiet",
        )  # fmt: skip

        def connected() -> list[str]:
            people = get_json(f"{node_process}api/sessions/{session_id}")["participants"]
            return [p["name"] for p in people if p["connected"]]

        assert sorted(poll(lambda: both(connected()), 40)) == ["alice", "bob"]
        b.send_signal(signal.SIGKILL)
        b.communicate(timeout=30)

        def names() -> list[str]:
            people = get_json(f"{node_process}api/sessions/{session_id}")["participants"]
            return [p["name"] for p in people]

        # Shown as lost first (not connected), then gone from the list once the grace is over.
        assert poll(lambda: connected() == ["alice"], 30)
        assert poll(lambda: names() == ["alice"], 30), "bob left the list, not just the mix"
        lobby = get_json(f"{node_process}api/sessions")["sessions"]
        assert [len(s["participants"]) for s in lobby if s["id"] == session_id] == [1]
        log = (tmp_path / "node.log").read_text()
        assert "participant gone" in log and "no audio for" in log, log[-2000:]
    finally:
        a.terminate()
        a.communicate(timeout=60)
