"""Reading measured HRTF sets from SOFA files (AES69, ``SimpleFreeFieldHRIR``).

A SOFA file is netCDF-4, i.e. HDF5, so h5py reads it. We take what a renderer needs —
the impulse responses, their sampling rate and the source directions — check every shape
and unit, resample to the mixing rate once, cut to the configured length and normalise.

Directions are turned into unit vectors in jamnet's head frame: x to the right, y to the
front, z up. SOFA's azimuth runs counter-clockwise (+90° is the listener's left); ours runs
clockwise (+90° is the right ear's side), as on a compass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal

from node.errors import SpatialError

DEFAULT_SOFA = Path("/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa")
FADE_TAPS = 32
"""Half-Hann fade at the end of a cut HRIR, so the cut adds no click of its own."""
MAX_DIRECTIONS = 100_000
MAX_FILE_TAPS = 65_536


@dataclass(frozen=True)
class HrtfSet:
    """A measured HRIR set at the mixing rate, ready for interpolation."""

    directions: npt.NDArray[np.float64]
    """(M, 3) unit vectors (right, front, up) of the measured directions."""
    hrirs: npt.NDArray[np.float32]
    """(M, 2, taps) impulse responses, ears (left, right)."""
    sample_rate: int
    name: str
    """Where the set came from (database and subject), for logs and the model card."""
    onsets: npt.NDArray[np.float32]
    """(M, 2) arrival time at each ear in samples (first sample above 10 % of the peak)."""
    ear_gains: npt.NDArray[np.float32]
    """(M, 2) broadband RMS gain of each ear's response."""

    @property
    def taps(self) -> int:
        """Length of every impulse response."""
        return int(self.hrirs.shape[2])


def _attr(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _attr(value.item())
    return str(value) if value is not None else ""


def head_vectors(
    azimuth_deg: npt.ArrayLike, elevation_deg: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """jamnet (clockwise) azimuth and elevation in degrees → unit vectors (right, front, up)."""
    az = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.radians(np.asarray(elevation_deg, dtype=np.float64))
    return np.stack([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)], axis=-1)


def _source_directions(
    positions: npt.NDArray[np.float64], units: str, kind: str
) -> npt.NDArray[np.float64]:
    if kind.lower().startswith("cart"):
        # SOFA cartesian: x front, y left, z up → ours: right = -y, front = x.
        vectors = np.stack([-positions[:, 1], positions[:, 0], positions[:, 2]], axis=1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if np.any(norms < 1e-9):
            raise SpatialError("SourcePosition has a zero-length cartesian direction")
        return np.asarray(vectors / norms, dtype=np.float64)
    if "degree" not in units.lower():
        raise SpatialError(
            f"SourcePosition units {units!r} are not degrees; only degree and cartesian are read"
        )
    # SOFA spherical: azimuth counter-clockwise from the front → negate for ours.
    return head_vectors(-positions[:, 0], positions[:, 1])


def _read(path: Path) -> tuple[np.ndarray, float, np.ndarray, str, str, np.ndarray, str]:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise SpatialError(f"{path} is not a SOFA (netCDF-4/HDF5) file: {exc}") from None
    with handle as sofa:
        conventions = _attr(sofa.attrs.get("SOFAConventions", b""))
        if _attr(sofa.attrs.get("Conventions", b"")) != "SOFA":
            raise SpatialError(f"{path} is HDF5 but has no Conventions = SOFA attribute")
        data_type = _attr(sofa.attrs.get("DataType", b"FIR"))
        if data_type != "FIR":
            raise SpatialError(f"{path}: DataType {data_type!r} is not FIR impulse responses")
        for name in ("Data.IR", "Data.SamplingRate", "SourcePosition"):
            if name not in sofa:
                raise SpatialError(f"{path} ({conventions or 'no conventions'}) has no {name}")
        ir_ds = sofa["Data.IR"]
        if ir_ds.ndim != 3 or ir_ds.shape[1] != 2:
            raise SpatialError(f"{path}: Data.IR has shape {ir_ds.shape}, expected (M, 2 ears, N)")
        if not 1 <= ir_ds.shape[0] <= MAX_DIRECTIONS or not 8 <= ir_ds.shape[2] <= MAX_FILE_TAPS:
            raise SpatialError(f"{path}: Data.IR shape {ir_ds.shape} is out of range")
        ir = np.asarray(ir_ds[()], dtype=np.float64)
        rate = float(np.asarray(sofa["Data.SamplingRate"][()]).ravel()[0])
        positions_ds = sofa["SourcePosition"]
        positions = np.asarray(positions_ds[()], dtype=np.float64)
        units = _attr(positions_ds.attrs.get("Units", b"degree, degree, metre"))
        kind = _attr(positions_ds.attrs.get("Type", b"spherical"))
        delay = (
            np.asarray(sofa["Data.Delay"][()], dtype=np.float64)
            if "Data.Delay" in sofa
            else np.zeros((1, 2))
        )
        label = " ".join(
            part
            for part in (
                _attr(sofa.attrs.get("DatabaseName", b"")),
                _attr(sofa.attrs.get("ListenerShortName", b"")),
            )
            if part and part != "b''"
        )
    if positions.shape == (1, 3):
        positions = np.repeat(positions, ir.shape[0], axis=0)
    if positions.shape != (ir.shape[0], 3):
        raise SpatialError(
            f"{path}: SourcePosition shape {positions.shape} does not match {ir.shape[0]} IRs"
        )
    if not (np.isfinite(ir).all() and np.isfinite(positions).all()):
        raise SpatialError(f"{path}: Data.IR or SourcePosition holds NaN or infinity")
    if not (math.isfinite(rate) and 8000 <= rate <= 384000):
        raise SpatialError(f"{path}: Data.SamplingRate {rate} Hz is out of range")
    if delay.shape not in {(1, 2), (ir.shape[0], 2)} or not np.all((delay >= 0) & (delay < 4096)):
        raise SpatialError(f"{path}: Data.Delay has shape {delay.shape} or values out of range")
    return ir, rate, positions, units, kind, np.broadcast_to(delay, (ir.shape[0], 2)), label


def _diffuse_field_equalise(ir: np.ndarray, rate: int) -> np.ndarray:
    """Remove what every direction shares (loudspeaker, microphone, ear canal).

    The diffuse-field response is the power average over all directions and both ears; a
    minimum-phase filter (real-cepstrum method) inverting its 1/3-octave-smoothed magnitude,
    limited to ±15 dB and left flat outside 150 Hz-16 kHz, is applied to every response, so
    interaural time and level differences are untouched.
    """
    n = 4096
    spectrum = np.fft.rfft(ir, n=n, axis=-1)
    power = np.mean(np.abs(spectrum) ** 2, axis=(0, 1))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    index = np.arange(power.size)
    lo = np.clip(np.floor(index / 2 ** (1 / 6)).astype(int), 0, power.size - 1)
    hi = np.clip(np.ceil(index * 2 ** (1 / 6)).astype(int) + 1, 1, power.size)
    smooth = np.sqrt((cumulative[hi] - cumulative[lo]) / np.maximum(hi - lo, 1))
    band = (freqs >= 500) & (freqs <= 8000)
    reference = np.sqrt(np.mean(smooth[band] ** 2))
    gain = np.clip(reference / np.maximum(smooth, 1e-12), 10 ** (-15 / 20), 10 ** (15 / 20))
    gain = np.where(freqs < 150, gain[np.searchsorted(freqs, 150)], gain)
    gain = np.where(freqs > 16000, gain[np.searchsorted(freqs, 16000)], gain)
    cepstrum = np.fft.irfft(np.log(gain), n=n)
    fold = np.zeros(n)
    fold[0], fold[n // 2] = cepstrum[0], cepstrum[n // 2]
    fold[1 : n // 2] = 2 * cepstrum[1 : n // 2]
    eq = np.fft.irfft(np.exp(np.fft.rfft(fold)), n=n)[:512]
    eq[-64:] *= np.cos(np.linspace(0.0, math.pi / 2, 64)) ** 2
    equalised: np.ndarray = signal.fftconvolve(ir, eq[None, None, :], axes=-1)
    return equalised


def load_sofa(path: str | Path, sample_rate: int = 48000, taps: int = 320) -> HrtfSet:
    """Read, check, resample, cut and normalise an HRTF set. Raises ``SpatialError``."""
    path = Path(path)
    if not path.is_file():
        hint = " (on Debian: apt install libmysofa1)" if path == DEFAULT_SOFA else ""
        raise SpatialError(
            f"HRTF file {path} not found{hint}; set spatial.sofa_file to a SOFA file"
        )
    ir, rate, positions, units, kind, delay, label = _read(path)
    directions = _source_directions(positions, units, kind)
    if np.any(delay > 0):  # per-direction broadband delays are folded into the responses
        shift = np.rint(delay).astype(int)
        padded = np.zeros((ir.shape[0], 2, ir.shape[2] + int(shift.max())))
        for m in range(ir.shape[0]):
            for ear in range(2):
                padded[m, ear, shift[m, ear] : shift[m, ear] + ir.shape[2]] = ir[m, ear]
        ir = padded
    ratio = Fraction(sample_rate, round(rate)).limit_denominator(1000)
    if ratio != 1:
        ir = signal.resample_poly(ir, ratio.numerator, ratio.denominator, axis=-1)
    ir = _diffuse_field_equalise(ir, sample_rate)
    if ir.shape[2] >= taps:
        ir = ir[..., :taps].copy()
        fade = min(FADE_TAPS, taps // 8)
        ir[..., taps - fade :] *= np.cos(np.linspace(0.0, math.pi / 2, fade)) ** 2
    else:
        ir = np.concatenate([ir, np.zeros((*ir.shape[:2], taps - ir.shape[2]))], axis=-1)
    energy = np.sum(ir * ir, axis=-1)
    mean_energy = float(np.mean(energy.sum(axis=1)))
    if not mean_energy > 0:
        raise SpatialError(f"{path}: every impulse response is silent")
    ir /= math.sqrt(mean_energy)  # a source at an average direction keeps its power
    peak = np.max(np.abs(ir), axis=-1, keepdims=True)
    onsets = np.argmax(np.abs(ir) >= 0.1 * np.maximum(peak, 1e-12), axis=-1).astype(np.float32)
    gains = np.sqrt(energy / mean_energy).astype(np.float32)
    return HrtfSet(
        directions=directions,
        hrirs=ir.astype(np.float32),
        sample_rate=sample_rate,
        name=f"{label or path.stem} ({path.name}, {ir.shape[0]} directions)",
        onsets=onsets,
        ear_gains=gains,
    )
