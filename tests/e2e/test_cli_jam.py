"""Two `jamnet jam` processes (real aiortc peers) play through a `jamnet node` process."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

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
    proc = subprocess.Popen(
        [*JAMNET, "node", "--port", "0", "--chain", "off", "--no-ai", "--no-p2p"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        url = read_line_matching(proc, r"open (http\S+)")
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


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
