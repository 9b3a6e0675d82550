"""The bandmate plays the shipped improviser's bars on the session's beat grid."""

from __future__ import annotations

import numpy as np
import pytest

from node.ai.bandmate import Bandmate, BandmateSettings, BarPlayer, Grid, schedule
from node.ai.music import Improviser, parse_chords
from node.ai.registry import ModelRegistry
from node.jam import _NoDecoder
from node.session.mixer import SessionMixer

RATE = 48000
HOP = 48  # 1 ms


@pytest.fixture(scope="module")
def improviser() -> Improviser:
    return Improviser(ModelRegistry().load("improviser"))


def _onsets(signal: np.ndarray) -> list[int]:
    """Sample positions where the level jumps: a 1 ms RMS envelope that rises well above
    what it was 2-8 ms before (each synth note starts with a 1 ms attack); 60 ms refractory."""
    frames = signal[: len(signal) // HOP * HOP].reshape(-1, HOP)
    env = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    floor = 0.02 * env.max()
    onsets: list[int] = []
    for i in range(8, len(env)):
        before = env[i - 8 : i - 1].max()
        rising = env[i] > floor and env[i] > 1.6 * before + 1e-9
        if rising and (not onsets or i * HOP - onsets[-1] > 0.06 * RATE):
            # The note began where the rise began: step back over the attack.
            start = i
            while start > i - 3 and env[start - 1] > 1.1 * before:
                start -= 1
            onsets.append(start * HOP)
    return onsets


def _run(improviser: Improviser, tempo: float, beats: int, unit: int, key: str, seconds: float):
    mixer = SessionMixer(4, tempo_bpm=tempo, beats_per_bar=beats)
    player = BarPlayer()
    slot = mixer.allocate("bandmate", _NoDecoder(), player)
    # Sparse bars (about 3 notes): the attack detector needs each note to rise above the last.
    bandmate = Bandmate(improviser, BandmateSettings("piano", 0.2), parse_chords("C G Am F"), key)
    scheduled: list[int] = []
    captured = []
    for _ in range(int(seconds * RATE / mixer.frame_samples)):
        grid = Grid.of(mixer.metronome, unit)
        for bar in bandmate.due(grid, mixer.sample):
            rendered = bandmate.render(grid, bar, RATE)
            assert schedule(
                mixer.post, player, rendered, lambda: Grid.of(mixer.metronome, unit), grid
            )
            scheduled.extend(rendered.onsets)
            bandmate.next_bar = bar + 1
        mixer.tick()
        captured.append(mixer.sources[slot].copy())
    return mixer, np.concatenate(captured), scheduled


@pytest.mark.parametrize(
    ("tempo", "beats", "unit", "key"), [(137.0, 4, 4, "D"), (96.0, 3, 4, "Em")]
)
def test_onsets_fall_on_the_beat_grid(improviser, tempo, beats, unit, key) -> None:
    mixer, audio, scheduled = _run(improviser, tempo, beats, unit, key, seconds=12.0)
    period = 60.0 * RATE / tempo
    step = period / 4  # sixteenths of a quarter-note beat
    tolerance = 0.005 * RATE

    # What was scheduled sits exactly on the metronome's grid (its sixteenths).
    origin = Grid.of(mixer.metronome, unit).beat_start(0)
    for onset in scheduled:
        k = round((onset - origin) / step)
        assert abs(onset - (origin + k * step)) <= 1
    # ... and the note attacks in what the mixer played are there too.
    detected = _onsets(audio)
    played = [s for s in scheduled if s < len(audio) - RATE // 100]
    assert len(played) > 10 and len(detected) >= 0.8 * len(played)
    for onset in detected:
        nearest = origin + round((onset - origin) / step) * step
        assert abs(onset - nearest) <= tolerance, f"onset at {onset / RATE:.4f} s is off the grid"
    # Every detected attack is one the bandmate scheduled (no stray sounds).
    for onset in detected:
        assert min(abs(onset - s) for s in scheduled) <= tolerance
    assert audio[: int(period * beats)].std() == 0.0  # bar 0 was already under way: silence
    assert np.abs(audio).max() < 1.0


def test_a_tempo_change_replans_on_the_new_grid(improviser) -> None:
    mixer = SessionMixer(4, tempo_bpm=120.0, beats_per_bar=4)
    player = BarPlayer()
    mixer.allocate("bandmate", _NoDecoder(), player)
    bandmate = Bandmate(improviser, BandmateSettings(), parse_chords("Am Dm"), "Am")
    grid = Grid.of(mixer.metronome, 4)
    for bar in bandmate.due(grid, mixer.sample):
        schedule(mixer.post, player, bandmate.render(grid, bar, RATE), lambda: grid, grid)
        bandmate.next_bar = bar + 1
    mixer.tick()
    assert player.scheduled == 2
    mixer.set_tempo(90.0, 4)
    mixer.tick()
    moved = Grid.of(mixer.metronome, 4)
    assert moved != grid
    # A bar made on the old grid is refused once the grid has moved.
    stale = bandmate.render(grid, 5, RATE)
    assert not schedule(mixer.post, player, stale, lambda: moved, grid)
    player.drop_from(mixer.sample)
    assert player.dropped == 2


def test_a_works_melody_is_harmonized_for_the_bandmate() -> None:
    from node.ai.music import harmonize
    from node.errors import InputError
    from node.session.session import KEY_RE, parse_chords

    # "Twinkle" in D: D D A A B B A, G G F# F# E E D.
    key, chords = harmonize([62, 62, 69, 69, 71, 71, 69, 69, 67, 67, 66, 66, 64, 64, 62, 62])
    assert (key, chords) == ("D", ("D", "Bm", "G", "Em"))
    # A minor tune ending on its tonic is named as the minor key; every chord is one the
    # session accepts.
    key, chords = harmonize([69, 72, 76, 69, 74, 77, 81, 74, 76, 79, 83, 76, 69])
    assert key == "Am" and KEY_RE.match(key) and parse_chords(list(chords)) == chords
    assert len(harmonize(list(range(60, 60 + 200)))[1]) == 16  # at most 16 bars
    with pytest.raises(InputError, match="no notes"):
        harmonize([])
