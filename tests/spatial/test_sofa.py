"""Loading SOFA files: the shipped KEMAR set, other sets via config, and bad files."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from node.errors import SpatialError
from node.spatial.bank import HrtfBank, plan_partitions
from node.spatial.hrtf import DirectionLookup
from node.spatial.renderer import BinauralRenderer
from node.spatial.sofa import DEFAULT_SOFA, head_vectors, load_sofa

OCTAHEDRON = [(0, 0), (90, 0), (180, 0), (270, 0), (0, 90), (0, -90)]


def write_sofa(
    path: Path,
    ir: np.ndarray,
    positions: list[tuple[float, float]],
    rate: float = 48000.0,
    **overrides: object,
) -> Path:
    """A minimal SimpleFreeFieldHRIR file as netCDF-4/HDF5 (spherical SOFA positions)."""
    with h5py.File(path, "w") as sofa:
        sofa.attrs["Conventions"] = overrides.get("conventions", "SOFA")
        sofa.attrs["SOFAConventions"] = "SimpleFreeFieldHRIR"
        sofa.attrs["DataType"] = "FIR"
        sofa.attrs["DatabaseName"] = "test"
        if not overrides.get("drop_ir"):
            sofa["Data.IR"] = ir
        sofa["Data.SamplingRate"] = np.array([rate])
        pos = sofa.create_dataset(
            "SourcePosition", data=np.array([(a, e, 1.0) for a, e in positions], dtype=np.float64)
        )
        pos.attrs["Type"] = "spherical"
        pos.attrs["Units"] = overrides.get("units", "degree, degree, metre")
    return path


def long_irs(taps: int, count: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    decay = np.exp(-np.arange(taps) / (taps / 4))
    return rng.standard_normal((count, 2, taps)) * decay


def test_kemar_loads_resampled_with_its_directions() -> None:
    hrtf = load_sofa(DEFAULT_SOFA, taps=320)
    assert hrtf.hrirs.shape == (710, 2, 320) and hrtf.sample_rate == 48000
    assert np.allclose(np.linalg.norm(hrtf.directions, axis=1), 1.0)
    assert "KEMAR" in hrtf.name
    lookup = DirectionLookup(hrtf)
    assert lookup.symmetric  # the left half is mirrored from the right half
    # SOFA's +90° azimuth is the left; ours is the right: the right ear is louder there.
    right = lookup.hrir(head_vectors([90.0], [0.0]))[0]
    assert np.sum(right[1] ** 2) > np.sum(right[0] ** 2)


def test_interpolation_has_no_jumps_between_measured_directions() -> None:
    lookup = DirectionLookup(load_sofa(DEFAULT_SOFA, taps=320))
    azimuths = np.linspace(0.0, 10.0, 201)  # across two measurement points at 0° elevation
    irs = lookup.hrir(head_vectors(azimuths, np.full_like(azimuths, 3.0)))
    steps = np.max(np.abs(np.diff(irs, axis=0)), axis=(1, 2))
    assert steps.max() < 10 * np.median(steps) + 1e-6
    blend = lookup.blend(head_vectors(azimuths, np.full_like(azimuths, 3.0)))
    assert np.allclose(blend.weight.sum(axis=1), 1.0) and (blend.weight >= 0).all()


def test_a_long_response_set_renders_exactly_through_several_partitions(tmp_path: Path) -> None:
    taps = 2000
    path = write_sofa(tmp_path / "long.sofa", long_irs(taps, 6), OCTAHEDRON)
    bank = HrtfBank(load_sofa(path, taps=taps))
    assert bank.partitions > 1, "several partitions and the frequency-domain delay line"
    renderer = BinauralRenderer(bank, 2, 2)
    renderer.set_geometry(np.array([(0.0, 0.0), (0.0, 1.0)], dtype=np.float32))
    rng = np.random.default_rng(5)
    sound = (0.1 * rng.standard_normal(960 * 12)).astype(np.float32)
    weights = np.array([[0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    left, right = np.zeros((2, 960), np.float32), np.zeros((2, 960), np.float32)
    out = []
    for block in range(12):
        sources = np.zeros((2, 960), dtype=np.float32)
        sources[1] = sound[block * 960 : (block + 1) * 960]
        renderer.render(weights, sources, left, right)
        out.append(np.stack([left[0], right[0]], axis=1))
    result = np.concatenate(out)
    hrir = bank.lookup.hrir(head_vectors([0.0], [0.0]))[0].astype(np.float64)
    for ear in range(2):
        expected = np.convolve(sound.astype(np.float64), hrir[ear])[: sound.size]
        assert np.max(np.abs(result[960:, ear] - expected[960:])) < 1e-5


def test_partition_plan_prefers_the_fewest_bins() -> None:
    assert plan_partitions(320, 960) == (320, 1)
    assert plan_partitions(557, 960) == (960, 1)
    m, p = plan_partitions(2000, 960)
    assert m * p >= 2000


def test_other_rates_are_resampled(tmp_path: Path) -> None:
    path = write_sofa(tmp_path / "44k.sofa", long_irs(256, 6), OCTAHEDRON, rate=44100.0)
    hrtf = load_sofa(path, taps=300)
    assert hrtf.sample_rate == 48000 and hrtf.hrirs.shape == (6, 2, 300)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.sofa", "not found"),
        (lambda p: (p / "text.sofa").write_text("hello") and p / "text.sofa", "not a SOFA"),
        (
            lambda p: write_sofa(p / "a.sofa", long_irs(64, 6), OCTAHEDRON, conventions="X"),
            "Conventions",
        ),
        (
            lambda p: write_sofa(p / "b.sofa", long_irs(64, 6), OCTAHEDRON, drop_ir=True),
            "no Data.IR",
        ),
        (lambda p: write_sofa(p / "c.sofa", np.zeros((6, 3, 64)), OCTAHEDRON), "2 ears"),
        (lambda p: write_sofa(p / "d.sofa", long_irs(64, 5), OCTAHEDRON), "does not match"),
        (
            lambda p: write_sofa(p / "e.sofa", long_irs(64, 6), OCTAHEDRON, rate=math.nan),
            "SamplingRate",
        ),
        (
            lambda p: write_sofa(p / "f.sofa", long_irs(64, 6), OCTAHEDRON, units="radian"),
            "degrees",
        ),
        (lambda p: write_sofa(p / "g.sofa", np.full((6, 2, 64), np.nan), OCTAHEDRON), "NaN"),
        (lambda p: write_sofa(p / "h.sofa", np.zeros((6, 2, 64)), OCTAHEDRON), "silent"),
        (lambda p: write_sofa(p / "i.sofa", long_irs(64, 3), OCTAHEDRON[:3]), "triangulated"),
    ],
)
def test_bad_sofa_files_get_clear_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(SpatialError, match=message):
        DirectionLookup(load_sofa(path, taps=64))
