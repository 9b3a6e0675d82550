"""The binaural renderer against the measured MIT KEMAR set: cues, exactness, motion, rooms."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from scipy import signal

from node.errors import SpatialError
from node.spatial.bank import HrtfBank, load_bank
from node.spatial.renderer import HISTORY_SPARE_BLOCKS, BinauralRenderer
from node.spatial.room import Room
from node.spatial.sofa import DEFAULT_SOFA, head_vectors

BLOCK = 960


@pytest.fixture(scope="module")
def bank() -> HrtfBank:
    return load_bank(str(DEFAULT_SOFA), 320)


def place(azimuth_deg: float, distance_m: float = 1.0) -> tuple[float, float]:
    """Stage point at ``azimuth_deg`` (clockwise from +y) around a listener at the origin."""
    a = math.radians(azimuth_deg)
    return distance_m * math.sin(a), distance_m * math.cos(a)


def render(
    renderer: BinauralRenderer,
    signal_in: np.ndarray,
    path: list[tuple[float, float]] | tuple[float, float],
    orientation: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Listener 0 at the origin hears source 1 walking ``path`` (one point per block)."""
    blocks = signal_in.shape[0] // BLOCK
    points = path if isinstance(path, list) else [path] * blocks
    weights = np.array([[0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    out = np.zeros((blocks * BLOCK, 2), dtype=np.float32)
    left = np.zeros((2, BLOCK), dtype=np.float32)
    right = np.zeros((2, BLOCK), dtype=np.float32)
    sources = np.zeros((2, BLOCK), dtype=np.float32)
    pose = np.array([orientation, (0.0, 0.0)], dtype=np.float32)
    for block in range(blocks):
        positions = np.array([(0.0, 0.0), points[block]], dtype=np.float32)
        renderer.set_geometry(positions, pose)
        sources[1] = signal_in[block * BLOCK : (block + 1) * BLOCK]
        renderer.render(weights, sources, left, right)
        out[block * BLOCK : (block + 1) * BLOCK, 0] = left[0]
        out[block * BLOCK : (block + 1) * BLOCK, 1] = right[0]
    return out


def noise(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(48000 * seconds))).astype(np.float32)


def test_source_at_plus_90_reaches_the_right_ear_first_and_louder(bank: HrtfBank) -> None:
    out = render(BinauralRenderer(bank, 2, 2), noise(1.0), place(90.0))[BLOCK:]
    left, right = out[:, 0].astype(np.float64), out[:, 1].astype(np.float64)
    lag = np.argmax(signal.correlate(left, right, mode="full")) - (right.size - 1)
    lead_ms = lag / 48.0  # left lags right by this much
    assert 0.55 <= lead_ms <= 0.80
    level_db = 10 * math.log10(np.sum(right**2) / np.sum(left**2))
    assert level_db >= 6.0


@pytest.mark.parametrize(
    ("azimuth", "pitch"), [(30.0, 0.0), (37.0, 0.0), (123.0, 0.0), (61.0, 20.0)]
)
def test_mirror_azimuths_swap_the_ears(bank: HrtfBank, azimuth: float, pitch: float) -> None:
    sound = noise(0.5)
    plus = render(BinauralRenderer(bank, 2, 2), sound, place(azimuth), (0.0, pitch))
    minus = render(BinauralRenderer(bank, 2, 2), sound, place(-azimuth), (0.0, pitch))
    assert np.max(np.abs(plus[:, 0] - minus[:, 1])) < 1e-6
    assert np.max(np.abs(plus[:, 1] - minus[:, 0])) < 1e-6
    assert np.max(np.abs(plus)) > 0.01


@pytest.mark.parametrize("azimuth", [0.0, 42.5, 90.0, -137.0, 180.0])
def test_static_rendering_equals_direct_convolution(bank: HrtfBank, azimuth: float) -> None:
    sound = noise(0.6)
    distance = 2.5
    out = render(BinauralRenderer(bank, 2, 2, near_m=1.0), sound, place(azimuth, distance))
    hrir = bank.lookup.hrir(head_vectors([azimuth], [0.0]))[0].astype(np.float64) / distance
    for ear in range(2):
        expected = np.convolve(sound.astype(np.float64), hrir[ear])[: sound.size]
        # The first block fades the new source in; from then on it is exact.
        assert np.max(np.abs(out[BLOCK:, ear] - expected[BLOCK:])) < 1e-5


def test_a_source_circling_once_a_second_makes_no_clicks(bank: HrtfBank) -> None:
    t = np.arange(48000 * 2) / 48000
    tone = (0.5 * np.sin(2 * math.pi * 500 * t)).astype(np.float32)
    blocks = tone.size // BLOCK
    sweep = [place(360.0 * b * BLOCK / 48000, 1.5) for b in range(blocks)]
    moving = render(BinauralRenderer(bank, 2, 2), tone, sweep)[BLOCK:]
    static_peak = 0.0
    for azimuth in range(0, 360, 15):
        still = render(BinauralRenderer(bank, 2, 2), tone[: 8 * BLOCK], place(azimuth, 1.5))
        static_peak = max(static_peak, float(np.max(np.abs(np.diff(still[BLOCK:], axis=0)))))
    worst = float(np.max(np.abs(np.diff(moving, axis=0))))
    assert 0 < worst <= 2 * static_peak


def test_turning_the_head_moves_the_source_the_other_way(bank: HrtfBank) -> None:
    sound = noise(0.4)
    ahead = render(BinauralRenderer(bank, 2, 2), sound, place(0.0), (-90.0, 0.0))[BLOCK:]
    # Facing left (yaw -90), a source straight ahead on the stage is on the right ear's side.
    assert np.sum(ahead[:, 1] ** 2) > 4 * np.sum(ahead[:, 0] ** 2)


def test_zero_sources_give_silence(bank: HrtfBank) -> None:
    renderer = BinauralRenderer(bank, 3, 3)
    renderer.set_geometry(np.array([(0, 0), (1, 1), (-2, 3)], dtype=np.float32))
    left = np.ones((3, BLOCK), dtype=np.float32)
    right = np.ones((3, BLOCK), dtype=np.float32)
    for _ in range(3):
        renderer.render(np.zeros((3, 3), np.float32), np.ones((3, BLOCK), np.float32), left, right)
    assert not left.any() and not right.any()
    renderer.set_room(Room(8.0, 6.0, 3.0, 0.3))
    renderer.render(np.zeros((3, 3), np.float32), np.zeros((3, BLOCK), np.float32), left, right)
    assert not left.any() and not right.any()


def test_level_follows_the_inverse_distance_law_with_clamps(bank: HrtfBank) -> None:
    sound = noise(0.3)

    def energy(distance: float) -> float:
        renderer = BinauralRenderer(bank, 2, 2, near_m=1.0, far_m=20.0)
        return float(np.sum(render(renderer, sound, place(30.0, distance))[BLOCK:] ** 2))

    assert 10 * math.log10(energy(2.0) / energy(4.0)) == pytest.approx(6.02, abs=0.05)
    assert energy(0.3) == pytest.approx(energy(1.0), rel=1e-4)  # near clamp
    assert energy(30.0) == pytest.approx(energy(20.0), rel=1e-4)  # far limit


def test_binaural_off_is_constant_power_panning(bank: HrtfBank) -> None:
    renderer = BinauralRenderer(bank, 2, 2)
    renderer.set_modes(np.array([False, False]), np.array([False, False]))
    sound = np.ones(4 * BLOCK, dtype=np.float32)
    out = render(renderer, sound, place(36.8699, 5.0), (0.0, 0.0))[2 * BLOCK :]
    theta = (0.6 + 1) * math.pi / 4
    assert out[-1, 1] / out[-1, 0] == pytest.approx(math.tan(theta), rel=1e-4)


def test_the_room_adds_delayed_reflections_and_a_decaying_tail(bank: HrtfBank) -> None:
    dry = BinauralRenderer(bank, 2, 2)
    wet = BinauralRenderer(bank, 2, 2)
    wet.set_modes(np.array([True, True]), np.array([True, True]))
    wet.set_room(Room(8.0, 6.0, 3.0, 0.3))
    burst = np.zeros(48000, dtype=np.float32)
    burst[: 10 * BLOCK] = noise(10 * BLOCK / 48000)
    out_dry = render(dry, burst, place(45.0, 2.0))
    out_wet = render(wet, burst, place(45.0, 2.0))
    after = slice(12 * BLOCK, 20 * BLOCK)  # 40-200 ms after the burst ended
    assert np.sum(out_dry[after] ** 2) == 0.0
    tail = np.sum(out_wet[after] ** 2)
    late = np.sum(out_wet[30 * BLOCK : 38 * BLOCK] ** 2)
    assert tail > 0 and late < tail, "the reverb decays"
    assert np.sum(out_wet[BLOCK : 10 * BLOCK] ** 2) > np.sum(out_dry[BLOCK : 10 * BLOCK] ** 2)
    # Turning the room off for this listener leaves only the decaying tail, then silence.
    wet.set_modes(np.array([True, True]), np.array([False, True]))
    silent = render(wet, np.zeros(48000 * 3, dtype=np.float32), place(45.0, 2.0))
    assert np.max(np.abs(silent[-BLOCK:])) < 1e-6


def test_bad_positions_are_refused(bank: HrtfBank) -> None:
    renderer = BinauralRenderer(bank, 2, 2)
    with pytest.raises(SpatialError, match="finite"):
        renderer.set_geometry(np.array([(0.0, math.nan), (1.0, 1.0)], dtype=np.float32))
    with pytest.raises(SpatialError, match="finite"):
        renderer.set_geometry(
            np.zeros((2, 2), dtype=np.float32), np.array([(math.inf, 0.0), (0, 0)], np.float32)
        )
    with pytest.raises(SpatialError, match="zero length"):
        bank.lookup.blend([[0.0, 0.0, 0.0]])


def test_a_steady_tick_allocates_nothing(bank: HrtfBank) -> None:
    """numpy reports its buffers to tracemalloc: a tick where nobody moved makes none."""
    renderer = BinauralRenderer(bank, 8, 8)
    rng = np.random.default_rng(2)
    renderer.set_geometry(rng.uniform(-4, 4, (8, 2)).astype(np.float32))
    renderer.set_modes(np.ones(8, dtype=bool), np.ones(8, dtype=bool))
    renderer.set_room(Room(10.0, 8.0, 3.0, 0.4))
    weights = np.ones((8, 8), dtype=np.float32)
    np.fill_diagonal(weights, 0.0)
    sources = (0.1 * rng.standard_normal((8, BLOCK))).astype(np.float32)
    left = np.zeros((8, BLOCK), dtype=np.float32)
    right = np.zeros((8, BLOCK), dtype=np.float32)
    for _ in range(HISTORY_SPARE_BLOCKS + 2):  # filters built, history wrapped once
        renderer.render(weights, sources, left, right)
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(HISTORY_SPARE_BLOCKS + 2):
            renderer.render(weights, sources, left, right)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The smallest buffer of a tick (one source block) is 3840 bytes; Python's own small
    # objects (ints, slices, views) stay far below that.
    assert peak - baseline < 2048, f"a tick allocated {peak - baseline} bytes"


def test_reflections_arrive_when_the_image_sources_say(bank: HrtfBank) -> None:
    """Stereo panning (no HRTF onset): dry click at t0, floor and ceiling images at +1.606 m."""
    renderer = BinauralRenderer(bank, 2, 2)
    renderer.set_modes(np.array([False, False]), np.array([True, True]))
    renderer.set_room(Room(10.0, 10.0, 3.0, 0.2))
    click = np.zeros(12 * BLOCK, dtype=np.float32)
    start = 5 * BLOCK + 100
    click[start] = 1.0
    out = render(renderer, click, (0.0, 2.0))
    mono = out[:, 0] + out[:, 1]
    assert np.argmax(np.abs(mono)) == start  # the dry click comes first and loudest
    extra_samples = (math.hypot(2.0, 3.0) - 2.0) * 48000 / 343.0  # 224.7
    window = np.abs(mono[start + 20 : start + 600])
    first = start + 20 + int(np.argmax(window))
    assert abs(first - (start + extra_samples)) <= 3
    wall = (8.0 - 2.0) * 48000 / 343.0  # the front wall's image is 6 m further: 840 samples
    around = np.abs(mono[start + int(wall) - 8 : start + int(wall) + 9])
    assert around.max() > 0.05 * np.abs(mono[first])
