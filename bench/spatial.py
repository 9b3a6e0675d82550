"""Binaural renderer cost: microseconds per 20 ms tick for S sources x L listeners.

For S = L in --sizes, room off and on, the renderer mixes every listener's personal binaural
block from random stage positions and head orientations (everyone hears everyone else,
nobody moves, so this is the steady-state tick). The baseline, measured in the same run, is
what a renderer without batching would do: for every listener-source pair, convolve the
source's block (with the filter's history) with the pair's two ear filters using
scipy.signal.fftconvolve — the HRIR for the room-off case, and HRIR plus the image-source
taps for the room-on case (its late reverb is not counted, which favours the baseline).

Everything runs on one thread (BLAS and numba pinned to one core). Two figures per case:
``us_per_tick`` renders back to back (the usual micro-benchmark; the filters stay in cache)
and ``us_per_tick_paced`` sleeps 18 ms between ticks as the mix clock does, so the
filter matrix is read back from memory — closer to what the node sees.

Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba

from node.spatial import kernels
from node.spatial.bank import HrtfBank
from node.spatial.renderer import BinauralRenderer
from node.spatial.room import Room
from node.spatial.sofa import DEFAULT_SOFA, load_sofa

BLOCK = 960


def _scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-4.5, 4.5, (size, 2)).astype(np.float32)
    orientations = np.stack(
        [rng.uniform(-180, 180, size), rng.uniform(-30, 30, size)], axis=1
    ).astype(np.float32)
    weights = np.ones((size, size), dtype=np.float32)
    np.fill_diagonal(weights, 0.0)
    sources = (0.1 * rng.standard_normal((size, BLOCK))).astype(np.float32)
    return positions, orientations, weights, sources


def _time(step: Any, ticks: int, pause_s: float) -> float:
    samples = []
    for _ in range(ticks):
        if pause_s:
            time.sleep(pause_s)
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def _pair_filters(
    renderer: BinauralRenderer, size: int, room: bool
) -> list[tuple[int, int, np.ndarray]]:
    """Each audible pair's two ear filters (time domain), as the baseline convolves them."""
    bank = renderer.bank
    taps = bank.partitions * bank.partition
    filters = []
    h = renderer._h_real + 1j * renderer._h_imag  # the renderer's own filters
    for listener in range(size):
        for source in range(size):
            if listener == source:
                continue
            ears = np.zeros((2, taps), dtype=np.float32)
            for ear in range(2):
                spectrum = np.concatenate(
                    [h[:, 2 * listener + ear, p * size + source] for p in range(bank.partitions)]
                )
                parts = np.fft.irfft(spectrum.reshape(bank.partitions, -1), n=bank.fft_size, axis=1)
                ears[ear] = parts[:, : bank.partition].reshape(-1)[:taps]
            if room:
                delay = renderer._refl_delay[listener, source]
                gain = renderer._refl_gain[listener, source]
                ear_delay = renderer._ear_delay[listener]
                ear_gain = renderer._ear_gain[listener]
                length = int(delay.max() + ear_delay.max()) + 1
                longer = np.zeros((2, max(taps, length)), dtype=np.float32)
                longer[:, :taps] = ears
                for wall in range(delay.shape[0]):
                    for ear in range(2):
                        longer[ear, delay[wall] + ear_delay[wall, ear]] += (
                            gain[wall] * ear_gain[wall, ear]
                        )
                ears = longer
            filters.append((listener, source, ears))
    return filters


def measure(
    bank: HrtfBank, size: int, room: bool, ticks: int, baseline_ticks: int
) -> dict[str, float]:
    """One case: renderer back to back, paced, and the per-pair baseline."""
    positions, orientations, weights, sources = _scene(size, seed=size)
    renderer = BinauralRenderer(bank, size, size)
    renderer.set_geometry(positions, orientations)
    renderer.set_modes(np.ones(size, dtype=bool), np.full(size, room))
    if room:
        renderer.set_room(Room(width_m=10.0, depth_m=10.0, height_m=3.0, absorption=0.3))
    left = np.zeros((size, BLOCK), dtype=np.float32)
    right = np.zeros_like(left)

    def step() -> None:
        renderer.render(weights, sources, left, right)

    for _ in range(3):  # build the filters, warm up
        step()
    hot = _time(step, ticks, 0.0)
    paced = _time(step, max(20, ticks // 5), 0.018)
    filters = _pair_filters(renderer, size, room)
    longest = max(f[2].shape[1] for f in filters)
    history = np.zeros((size, longest - 1 + BLOCK), dtype=np.float32)
    history[:, -BLOCK:] = sources
    out = np.zeros((size, 2, BLOCK), dtype=np.float32)

    def baseline() -> None:
        out.fill(0.0)
        for listener, source, ears in filters:
            window = history[source, -(ears.shape[1] - 1 + BLOCK) :]
            for ear in range(2):
                out[listener, ear] += signal.fftconvolve(window, ears[ear], mode="valid")

    base = _time(baseline, baseline_ticks, 0.0)
    return {"hot": hot, "paced": paced, "baseline": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="8,16,32,64", help="comma-separated S = L values")
    parser.add_argument("--ticks", type=int, default=200, help="ticks timed per case")
    parser.add_argument("--baseline-ticks", type=int, default=5, help="baseline ticks per case")
    parser.add_argument("--sofa", default=str(DEFAULT_SOFA))
    args = parser.parse_args()
    numba.set_num_threads(1)
    kernels.warm_up()
    hrtf = load_sofa(args.sofa)
    bank = HrtfBank(hrtf)
    result: dict[str, Any] = {
        "us_per_tick": {},
        "us_per_tick_paced": {},
        "baseline_us_per_tick": {},
        "speedup": {},
    }
    with threadpool_limits(1):
        for size in (int(s) for s in args.sizes.split(",")):
            for room in (False, True):
                key = f"{size}x{size}" + ("_room" if room else "")
                print(f"[spatial] {key} ...", file=sys.stderr, flush=True)
                figures = measure(bank, size, room, args.ticks, args.baseline_ticks)
                result["us_per_tick"][key] = round(figures["hot"], 1)
                result["us_per_tick_paced"][key] = round(figures["paced"], 1)
                result["baseline_us_per_tick"][key] = round(figures["baseline"], 1)
                result["speedup"][key] = round(figures["baseline"] / figures["hot"], 1)
                print(f"[spatial] {key}: {figures}", file=sys.stderr, flush=True)
    result.update(
        {
            "hrtf": bank.name,
            "fft_size": bank.fft_size,
            "partition_taps": bank.partition,
            "partitions": bank.partitions,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
