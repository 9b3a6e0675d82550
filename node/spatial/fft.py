"""Batched real FFTs that write into preallocated (possibly strided) arrays.

scipy's pocketfft vectorises across the many short transforms of a tick (every source's
window, every listener's ear) and can write into a given output, so a tick allocates
nothing. Its binding is private to scipy (pinned in requirements.lock); if it ever moves,
numpy's FFT (slower for batches, same results) takes over.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

try:
    from scipy.fft._pocketfft import pypocketfft as _pocket
except ImportError:  # pragma: no cover - depends on the scipy build
    _pocket = None


def rfft_into(windows: npt.NDArray[np.float32], out: npt.NDArray[np.complex64]) -> None:
    """Forward real FFT of each row of ``windows`` (R, N) into ``out`` (R, N/2+1)."""
    if _pocket is not None:
        _pocket.r2c(windows, axes=[1], forward=True, inorm=0, out=out, nthreads=1)
    else:  # pragma: no cover
        out[...] = np.fft.rfft(windows, axis=1)


def irfft_into(spectra: npt.NDArray[np.complex64], out: npt.NDArray[np.float32]) -> None:
    """Inverse real FFT along axis 0: ``spectra`` (K, C) → ``out`` (N, C), N = 2(K-1)."""
    size = out.shape[0]
    if _pocket is not None:
        _pocket.c2r(spectra, axes=[0], lastsize=size, forward=False, inorm=2, out=out, nthreads=1)
    else:  # pragma: no cover
        out[...] = np.fft.irfft(spectra, n=size, axis=0)
