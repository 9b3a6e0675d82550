"""The recorder's files over a take with musicians coming and going."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import soundfile

from node.media.recorder import Recorder, _Block, recover

FRAME = 480  # 10 ms


def _block(recorder: Recorder, keys: list[str], value: float = 0.5) -> None:
    stems = [(key, np.full(FRAME, int(value * 32767), np.int16)) for key in keys]
    recorder._queue.put(_Block(stems, np.full((FRAME, 2), 1000, np.int16)))


def _drain(recorder: Recorder, frames: int) -> None:
    """Wait until the writer thread has written ``frames`` (however busy the machine)."""
    deadline = time.monotonic() + 120
    while recorder.frames < frames:
        assert time.monotonic() < deadline, "the writer thread never caught up"
        time.sleep(0.01)


def test_stems_line_up_with_the_mix_and_departed_ones_are_closed(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, 48000, FRAME)
    for _ in range(3):
        _block(recorder, ["a", "b"])
    for _ in range(2000):  # b left; 20 s later c comes
        _block(recorder, ["a"])
    _drain(recorder, 2003)
    assert set(recorder._stems) == {"a"}, "b's file is closed once b left"
    for _ in range(4):
        _block(recorder, ["a", "c"])
    recorder.gap(2)  # the clock skipped two ticks: silence everywhere
    _block(recorder, ["a", "c"])
    frames = recorder.stop()
    assert frames == 3 + 2000 + 4 + 2 + 1
    mix, rate = soundfile.read(str(tmp_path / "mix.wav"), dtype="int16")
    assert rate == 48000 and mix.shape == (frames * FRAME, 2)
    audio = {k: soundfile.read(str(tmp_path / f"stem-{k}.wav"), dtype="int16")[0] for k in "abc"}
    assert {len(a) for a in audio.values()} == {frames * FRAME}, "stems line up"
    assert (audio["b"][: 3 * FRAME] > 0).all() and not audio["b"][3 * FRAME :].any()
    assert not audio["c"][: 2003 * FRAME].any() and (audio["c"][2003 * FRAME :][:FRAME] > 0).all()
    assert not audio["a"][2007 * FRAME : 2009 * FRAME].any()  # the gap
    # c's 20 s of silence before it joined is a hole, not 1.9 MB of written zeros.
    stat = os.stat(tmp_path / "stem-c.wav")
    assert stat.st_size == 44 + 2 * frames * FRAME
    assert stat.st_blocks * 512 < stat.st_size // 4


def test_a_killed_take_is_recovered_with_aligned_stems(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, 48000, FRAME)
    for _ in range(5):
        _block(recorder, ["a", "b"])
    for _ in range(5):
        _block(recorder, ["a"])
    _drain(recorder, 10)
    recorder._mix.flush()
    for stem in recorder._stems.values():
        stem.file.flush()
    # The node dies here: no stop(). The next start repairs what is on disk.
    assert recover(tmp_path, FRAME) == 10
    lengths = {len(soundfile.read(str(p), dtype="int16")[0]) for p in tmp_path.glob("*.wav")}
    assert lengths == {10 * FRAME}
