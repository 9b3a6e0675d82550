"""`jamnet demo spatial`: a binaural WAV to hear and an ITD/ILD plot to see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from node.cli import main


def test_demo_writes_a_binaural_scene_and_a_cue_plot(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "scene.wav"
    assert main(["demo", "spatial", str(out), "--seconds", "3"]) == 0
    audio, rate = soundfile.read(str(out), dtype="float32")
    assert rate == 48000 and audio.shape == (3 * 48000 // 960 * 960, 2)
    assert 0.01 < np.max(np.abs(audio)) <= 0.91
    # Binaural, not mono: the ears differ, and the circling lead moves between them.
    assert np.mean(np.abs(audio[:, 0] - audio[:, 1])) > 0.005
    png = tmp_path / "scene.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x.mp3"], "must be a .wav"),
        (["x.wav", "--seconds", "0.1"], "between 1 and 120"),
        (["x.wav", "--sofa", "/nonexistent.sofa"], "not found"),
    ],
)
def test_demo_refuses_bad_arguments(tmp_path: Path, capsys, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    args[0] = str(tmp_path / args[0])
    assert main(["demo", "spatial", *args]) == 2
    assert message in capsys.readouterr().err
