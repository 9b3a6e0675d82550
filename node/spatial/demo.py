"""`jamnet demo spatial`: a short binaural scene to hear, and the HRTF set's cues to see.

Four synthesized instruments stand around the listener 2 m away — bass front left, chords
front right, hi-hat behind, and a lead voice that walks once around the listener — and are
rendered through the same renderer the node uses. Listen on headphones. The plot shows the
loaded set's interaural time difference (cross-correlation lag) and level difference
(broadband) against azimuth on the horizontal plane.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
from scipy import signal

from node.errors import InputError
from node.spatial.bank import load_bank
from node.spatial.hrtf import DirectionLookup
from node.spatial.renderer import BinauralRenderer
from node.spatial.sofa import head_vectors

RATE = 48000
BLOCK = 960
TEMPO_BPM = 100.0


def _notes(pattern: list[float], beats_per_note: float, seconds: float) -> npt.NDArray[np.float64]:
    """Frequency of the note sounding at each sample (pattern repeats)."""
    t = np.arange(int(seconds * RATE)) / RATE
    step = (t * TEMPO_BPM / 60.0 / beats_per_note).astype(int) % len(pattern)
    notes: npt.NDArray[np.float64] = np.asarray(pattern, dtype=np.float64)[step]
    return notes


def _envelope(beats_per_note: float, seconds: float, decay_s: float) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * RATE)) / RATE
    since = (t * TEMPO_BPM / 60.0 / beats_per_note) % 1.0 * beats_per_note * 60.0 / TEMPO_BPM
    attack = np.clip(since / 0.01, 0, 1)
    return attack * np.exp(-since / decay_s)


def instruments(seconds: float, seed: int = 7) -> npt.NDArray[np.float32]:
    """(4, samples): bass, chords, hi-hat, lead."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    a2, d3, e3, f2 = 110.0, 146.83, 164.81, 87.31
    bass_f = _notes([a2, a2, f2, e3 / 2, d3 / 2, e3 / 2, a2, a2], 1.0, seconds)
    phase = 2 * math.pi * np.cumsum(bass_f) / RATE
    bass = sum(np.sin(k * phase) / k for k in range(1, 6)) * _envelope(1.0, seconds, 0.35)
    chord_roots = _notes([220.0, 174.61, 164.81, 220.0], 4.0, seconds)
    chords = sum(np.sin(2 * math.pi * np.cumsum(chord_roots * r) / RATE) for r in (1.0, 1.26, 1.5))
    chords *= 0.5 + 0.5 * _envelope(2.0, seconds, 1.2)
    rng = np.random.default_rng(seed)
    noise = signal.lfilter([1.0, -1.0], [1.0, -0.5], rng.standard_normal(n))
    hat = noise * _envelope(0.5, seconds, 0.04)
    lead_f = _notes([440.0, 523.25, 587.33, 659.25, 587.33, 523.25, 493.88, 440.0], 0.5, seconds)
    vibrato = 1 + 0.004 * np.sin(2 * math.pi * 5.5 * t)
    lead = np.sin(2 * math.pi * np.cumsum(lead_f * vibrato) / RATE)
    lead += 0.3 * np.sin(2 * 2 * math.pi * np.cumsum(lead_f * vibrato) / RATE)
    lead *= 0.4 + 0.6 * _envelope(0.5, seconds, 0.4)
    voices = np.stack([bass, chords, hat, lead])
    voices /= np.max(np.abs(voices), axis=1, keepdims=True)
    return np.asarray(voices * np.array([[0.5], [0.25], [0.2], [0.35]]), dtype=np.float32)


def render_scene(renderer: BinauralRenderer, seconds: float) -> npt.NDArray[np.float32]:
    """The scene as a (samples, 2) binaural signal."""
    voices = instruments(seconds)
    blocks = voices.shape[1] // BLOCK
    listener = np.zeros(2)
    fixed = {0: -50.0, 1: 50.0, 2: 180.0}
    out = np.zeros((blocks * BLOCK, 2), dtype=np.float32)
    left = np.zeros((1, BLOCK), dtype=np.float32)
    right = np.zeros((1, BLOCK), dtype=np.float32)
    weights = np.ones((1, 5), dtype=np.float32)
    weights[0, 0] = 0.0  # row/column 0 is the listener
    positions = np.zeros((5, 2), dtype=np.float32)
    sources = np.zeros((5, BLOCK), dtype=np.float32)
    for block in range(blocks):
        t = block * BLOCK / RATE
        azimuths = [fixed[0], fixed[1], fixed[2], (t / seconds) * 360.0]
        for index, azimuth in enumerate(azimuths):
            a = math.radians(azimuth)
            positions[index + 1] = listener + 2.0 * np.array([math.sin(a), math.cos(a)])
        renderer.set_geometry(positions, np.zeros((1, 2), dtype=np.float32))
        sources[1:] = voices[:, block * BLOCK : (block + 1) * BLOCK]
        renderer.render(weights, sources, left, right)
        out[block * BLOCK : (block + 1) * BLOCK, 0] = left[0]
        out[block * BLOCK : (block + 1) * BLOCK, 1] = right[0]
    peak = float(np.max(np.abs(out)))
    if peak > 0.9:
        out *= 0.9 / peak
    return out


def cues(
    lookup: DirectionLookup,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(azimuths, ITD ms (right earlier > 0), ILD dB (right louder > 0)) at 0° elevation."""
    azimuths = np.arange(-180.0, 181.0, 5.0)
    irs = lookup.hrir(head_vectors(azimuths, np.zeros_like(azimuths))).astype(np.float64)
    rate = lookup.hrtf.sample_rate
    itd = np.empty_like(azimuths)
    for i, (left, right) in enumerate(irs):
        correlation = signal.correlate(left, right, mode="full")
        itd[i] = (np.argmax(correlation) - (right.size - 1)) / rate * 1000.0
    ild = 10 * np.log10(np.sum(irs[:, 1] ** 2, axis=1) / np.sum(irs[:, 0] ** 2, axis=1))
    return azimuths, itd, ild


def plot_cues(lookup: DirectionLookup, path: Path) -> None:
    """Write the ITD/ILD plot as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    azimuths, itd, ild = cues(lookup)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(azimuths, itd, marker=".")
    top.set_ylabel("ITD (ms, right ear earlier > 0)")
    top.grid(True, alpha=0.3)
    bottom.plot(azimuths, ild, marker=".", color="tab:red")
    bottom.set_ylabel("ILD (dB, right louder > 0)")
    bottom.set_xlabel("azimuth (degrees, clockwise from the front; +90 = right)")
    bottom.grid(True, alpha=0.3)
    figure.suptitle(f"Interaural cues, horizontal plane: {lookup.hrtf.name}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run(out: Path, png: Path | None, seconds: float, sofa_file: str, taps: int) -> None:
    """Render the demo WAV and the cue plot; prints where they went."""
    if not 1.0 <= seconds <= 120.0:
        raise InputError("--seconds must be between 1 and 120")
    if out.suffix.lower() != ".wav":
        raise InputError(f"{out}: the output must be a .wav file")
    print(f"loading HRTF set {sofa_file} ...", file=sys.stderr, flush=True)
    bank = load_bank(sofa_file, taps)
    renderer = BinauralRenderer(bank, 1, 5)
    audio = render_scene(renderer, seconds)
    out.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(out), audio, RATE, subtype="PCM_16")
    print(f"wrote {out} ({seconds:g} s binaural, 48 kHz; listen on headphones)")
    png = png or out.with_suffix(".png")
    plot_cues(bank.lookup, png)
    print(f"wrote {png} (ITD and ILD against azimuth, {bank.name})")
