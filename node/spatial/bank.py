"""The HRTF set prepared for the renderer: FFT layout and spectra cached per direction.

Built once per node (a few MB) and shared by every session's renderer.

Convolution layout (uniformly partitioned overlap-save): each 20 ms block of B = 960
samples is convolved with filters cut into partitions of M taps (M divides B), using FFTs of
N = B + M points. Partition p sees the input delayed by p·M samples, so the spectra of the
input windows ending at every multiple of M form a frequency-domain delay line that later
ticks reuse. M is chosen per set to make (partitions × bins) smallest: the MIT KEMAR set cut
to 320 taps runs as one partition of 320 with 1280-point FFTs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from node.spatial.hrtf import DirectionLookup
from node.spatial.sofa import HrtfSet

C64 = npt.NDArray[np.complex64]


def plan_partitions(taps: int, block: int) -> tuple[int, int]:
    """(partition length M, partitions P) that make P × (N/2 + 1) bins per pair smallest."""
    best: tuple[int, int, int] | None = None
    for divisor in (3, 2, 1):
        if block % divisor:
            continue
        m = block // divisor
        partitions = math.ceil(taps / m)
        cost = partitions * ((block + m) // 2 + 1)
        if best is None or cost < best[0]:
            best = (cost, m, partitions)
    assert best is not None
    return best[1], best[2]


class HrtfBank:
    """Direction lookup plus per-direction filter spectra at the renderer's FFT size."""

    def __init__(self, hrtf: HrtfSet, block: int = 960) -> None:
        self.lookup = DirectionLookup(hrtf)
        self.block = block
        self.partition, self.partitions = plan_partitions(hrtf.taps, block)
        self.fft_size = block + self.partition
        self.bins = self.fft_size // 2 + 1
        hrirs = self.lookup.hrirs  # (V, 2, taps), poles included
        count, _, taps = hrirs.shape
        padded = np.zeros((count, 2, self.partitions * self.partition), dtype=np.float32)
        padded[:, :, :taps] = hrirs
        parts = padded.reshape(count, 2, self.partitions, self.partition)
        self.spectra: C64 = np.fft.rfft(parts, n=self.fft_size, axis=-1).astype(np.complex64)
        """(V, 2, P, K): spectrum of each partition of each direction's response."""
        onsets = np.zeros((count, 2), dtype=np.float32)
        gains = np.zeros((count, 2), dtype=np.float32)
        measured = hrtf.onsets.shape[0]
        onsets[:measured] = hrtf.onsets
        gains[:measured] = hrtf.ear_gains
        if count > measured:  # virtual poles: from their own (averaged) responses
            extra = hrirs[measured:]
            peak = np.max(np.abs(extra), axis=-1, keepdims=True)
            onsets[measured:] = np.argmax(np.abs(extra) >= 0.1 * peak, axis=-1)
            gains[measured:] = np.sqrt(np.sum(extra * extra, axis=-1))
        self.onsets = onsets
        """(V, 2) arrival sample at each ear (image sources use it as their ITD)."""
        self.ear_gains = gains
        """(V, 2) broadband gain at each ear (image sources use it as their ILD)."""

    @property
    def name(self) -> str:
        """The HRTF set's description."""
        return self.lookup.hrtf.name


_BANKS: dict[tuple[str, float, int, int], HrtfBank] = {}


def load_bank(sofa_file: str, taps: int, block: int = 960) -> HrtfBank:
    """Load (once per process and file version) the set, prepare it, compile the kernels.

    Slow (about a second): call it off the event loop.
    """
    from node.spatial import kernels
    from node.spatial.sofa import load_sofa

    path = Path(sofa_file)
    stamp = path.stat().st_mtime if path.is_file() else 0.0
    key = (str(path.resolve()), stamp, taps, block)
    bank = _BANKS.get(key)
    if bank is None:
        bank = HrtfBank(load_sofa(path, taps=taps), block)
        kernels.warm_up()
        _BANKS[key] = bank
    return bank
