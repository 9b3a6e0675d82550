"""Compiled inner loops of the room simulation (numba; they release the GIL).

Early reflections are a few delayed, scaled copies of each source per listener ear — sparse
work that numpy can only do as thousands of tiny operations. The late reverb is a feedback
delay network: recursive, sample by sample. Both run here as plain loops that numba turns
into machine code, vectorised across listeners where the data allows.

Compilation happens once per process (and is cached on disk when the package directory is
writable); ``warm_up()`` does it ahead of the first tick.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True)
def multiply_accumulate(
    h_real: np.ndarray,
    h_imag: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    row_end: int,
    extra_rows: np.ndarray,
    col_end: int,
    extra_cols: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Every pair's frequency-domain multiply-accumulate: y[k, r] = sum_c h[k, r, c] x[k, c].

    ``h_real``/``h_imag`` (K, R, C) float32 hold the filter matrix split into real and
    imaginary planes so the inner loop vectorises; ``x`` (K, C) and ``y`` (K, R) are
    complex64. Only rows ``0..row_end-1`` plus ``extra_rows`` and columns ``0..col_end-1``
    plus ``extra_cols`` are visited (the rest hold no filter: a session's empty slots cost
    nothing); rows not visited keep their value. ``scratch`` is (2, C) float32. The filter
    matrix is the large operand and is streamed once per tick.
    """
    bins = h_real.shape[0]
    cols = h_real.shape[2]
    xr = scratch[0]
    xi = scratch[1]
    for k in range(bins):
        for c in range(cols):
            xr[c] = x[k, c].real
            xi[c] = x[k, c].imag
        for i in range(row_end + extra_rows.shape[0]):
            r = i if i < row_end else extra_rows[i - row_end]
            acc_r = np.float32(0.0)
            acc_i = np.float32(0.0)
            for c in range(col_end):
                a = h_real[k, r, c]
                b = h_imag[k, r, c]
                acc_r += a * xr[c] - b * xi[c]
                acc_i += a * xi[c] + b * xr[c]
            for c in extra_cols:
                a = h_real[k, r, c]
                b = h_imag[k, r, c]
                acc_r += a * xr[c] - b * xi[c]
                acc_i += a * xi[c] + b * xr[c]
            y[k, r] = complex(acc_r, acc_i)


DECIMATION_DELAY = 4
"""Half-rate sample m stands for full-rate sample 2m - 4 (the decimator's group delay)."""


@njit(cache=True, nogil=True, fastmath=True)
def decimate(history: np.ndarray, end: int, block: int, taps: np.ndarray, half: np.ndarray) -> None:
    """Low-pass and halve the newest ``block`` samples of each row of ``history`` (S, T).

    ``half[s, m] = sum_t taps[t] * history[s, 2m + 1 - t]`` for the new m, i.e.
    ``end/2 - block/2 <= m < end/2``, with ``taps`` an 11-tap symmetric half-band low-pass:
    this is the signal at full-rate time 2m - 4. Early reflections are rendered at this rate.
    """
    sources = history.shape[0]
    first = (end - block) // 2
    last = end // 2
    # Symmetric 11-tap half-band: taps 1, 3, 7 and 9 are zero; pair the mirrored ones.
    c0, c2, c4, c5 = taps[0], taps[2], taps[4], taps[5]
    for s in range(sources):
        row = history[s]
        out = half[s]
        for m in range(first, last):
            k = 2 * m
            out[m] = (
                c0 * (row[k + 1] + row[k - 9])
                + c2 * (row[k - 1] + row[k - 7])
                + c4 * (row[k - 3] + row[k - 5])
                + c5 * row[k - 4]
            )


@njit(cache=True, nogil=True, fastmath=True)
def reflect(
    half: np.ndarray,
    width: int,
    base: int,
    delays: np.ndarray,
    gains: np.ndarray,
    ear_delays: np.ndarray,
    ear_gains: np.ndarray,
    only: np.ndarray,
    envelope: np.ndarray,
    bus: np.ndarray,
    upsampled: np.ndarray,
    out_left: np.ndarray,
    out_right: np.ndarray,
) -> None:
    """Add early reflections to ``out_left``/``out_right`` (L, B).

    Two stages per listener and wall. The wall's bus sums every source's image at half
    the sample rate (walls take the highs anyway): ``delays``/``gains`` (L, S, W) are the
    extra path in half-rate samples and the level; ``half`` (S*width, flat rows) is the
    half-rate history and bus sample j of source s reads ``half[s*width + base - delay + j]``.
    Then the bus is brought back to full rate (linear interpolation) and each ear hears it
    from the wall's direction: ``ear_delays``/``ear_gains`` (L, W, 2), arrival time in
    full-rate samples and level. ``bus`` (W*(PAD/2 + B/2 + 1), flat) and ``upsampled``
    (PAD + B) are scratch; PAD lets an ear hear the bus up to PAD samples late.
    ``envelope`` (B,) scales the result (a crossfade ramp). Sources are the outer loop so
    one source's recent samples stay in L1 while all the walls read them.
    """
    listeners, sources, walls = delays.shape
    block = envelope.shape[0]
    span = upsampled.shape[0]
    pad = span - block
    half_span = bus.shape[0] // walls
    for li in range(listeners):
        if not only[li]:
            continue
        bus[:] = 0.0
        for s in range(sources):
            for w in range(walls):
                g = gains[li, s, w]
                if g != 0.0:
                    start = s * width + base - delays[li, s, w]
                    _axpy(
                        bus[w * half_span : (w + 1) * half_span],
                        half[start : start + half_span],
                        g,
                    )
        for w in range(walls):
            if ear_gains[li, w, 0] == 0.0 and ear_gains[li, w, 1] == 0.0:
                continue
            wall = bus[w * half_span : (w + 1) * half_span]
            for j in range(span // 2):
                upsampled[2 * j] = wall[j]
                upsampled[2 * j + 1] = np.float32(0.5) * (wall[j] + wall[j + 1])
            for e in range(2):
                g = ear_gains[li, w, e]
                if g != 0.0:
                    first = pad - ear_delays[li, w, e]
                    target = out_left[li] if e == 0 else out_right[li]
                    _axpy_shaped(target, upsampled[first : first + block], g, envelope)


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _axpy(y: np.ndarray, x: np.ndarray, g: float) -> None:
    for n in range(y.shape[0]):
        y[n] += g * x[n]


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _axpy_shaped(y: np.ndarray, x: np.ndarray, g: float, shape: np.ndarray) -> None:
    for n in range(y.shape[0]):
        y[n] += g * shape[n] * x[n]


@njit(cache=True, nogil=True, fastmath=True)
def reverb(
    send: np.ndarray,
    lines: np.ndarray,
    lengths: np.ndarray,
    positions: np.ndarray,
    feedback: np.ndarray,
    damping: float,
    state: np.ndarray,
    taps_left: np.ndarray,
    taps_right: np.ndarray,
    value: np.ndarray,
    late: np.ndarray,
    late_last: np.ndarray,
    wet: float,
    hearing: np.ndarray,
    out_left: np.ndarray,
    out_right: np.ndarray,
) -> None:
    """An 8-line feedback delay network per listener, all listeners in lock step.

    ``send`` (B, L) is each listener's reverb input; ``lines`` (8, Dmax, L) the delay lines
    (line i uses its first ``lengths[i]`` rows, read and written at ``positions[i]``);
    ``feedback[i]`` the per-pass gain that sets the decay time; ``damping`` the one-pole
    low-pass coefficient (air and wall absorption of high frequencies); ``state`` (8, L) the
    low-pass memories. The lines are mixed by an orthogonal 8×8 Hadamard matrix. ``value``
    (8, L) and ``late`` (2, B, L) are scratch. The network may run at half the output's
    rate: ``wet`` times its output, brought to the length of ``out_left``/``out_right``
    (L, B or 2B) by linear interpolation (``late_last`` (2, L) keeps the previous block's
    last sample), is added for the listeners flagged in ``hearing``.
    """
    count = lines.shape[0]
    block, listeners = send.shape
    late[:] = 0.0
    scale = np.float32(1.0 / np.sqrt(8.0))
    for n in range(block):
        for i in range(count):
            row = positions[i]
            for li in range(listeners):
                damped = lines[i, row, li] + damping * (state[i, li] - lines[i, row, li])
                state[i, li] = damped
                value[i, li] = damped
                late[0, n, li] += taps_left[i] * damped
                late[1, n, li] += taps_right[i] * damped
        for li in range(listeners):  # fast Walsh-Hadamard transform of the 8 outputs
            a0 = value[0, li] + value[1, li]
            a1 = value[0, li] - value[1, li]
            a2 = value[2, li] + value[3, li]
            a3 = value[2, li] - value[3, li]
            a4 = value[4, li] + value[5, li]
            a5 = value[4, li] - value[5, li]
            a6 = value[6, li] + value[7, li]
            a7 = value[6, li] - value[7, li]
            b0 = a0 + a2
            b2 = a0 - a2
            b1 = a1 + a3
            b3 = a1 - a3
            b4 = a4 + a6
            b6 = a4 - a6
            b5 = a5 + a7
            b7 = a5 - a7
            value[0, li] = (b0 + b4) * scale
            value[4, li] = (b0 - b4) * scale
            value[1, li] = (b1 + b5) * scale
            value[5, li] = (b1 - b5) * scale
            value[2, li] = (b2 + b6) * scale
            value[6, li] = (b2 - b6) * scale
            value[3, li] = (b3 + b7) * scale
            value[7, li] = (b3 - b7) * scale
        for i in range(count):
            row = positions[i]
            g = feedback[i]
            for li in range(listeners):
                lines[i, row, li] = g * value[i, li] + send[n, li]
            positions[i] = row + 1 if row + 1 < lengths[i] else 0
    half_rate = out_left.shape[1] == 2 * block  # else the same rate as the output
    for li in range(listeners):
        for channel in range(2):
            previous = late_last[channel, li]
            late_last[channel, li] = late[channel, block - 1, li]
            if not hearing[li]:
                continue
            target = out_left[li] if channel == 0 else out_right[li]
            for n in range(block):
                current = late[channel, n, li]
                if half_rate:
                    target[2 * n] += wet * np.float32(0.5) * (previous + current)
                    target[2 * n + 1] += wet * current
                else:
                    target[n] += wet * current
                previous = current


def warm_up() -> None:
    """Compile (or load from the cache) the kernels on tiny inputs."""
    f32 = np.float32
    multiply_accumulate(
        np.zeros((2, 2, 3), dtype=f32),
        np.zeros((2, 2, 3), dtype=f32),
        np.zeros((2, 3), dtype=np.complex64),
        np.zeros((2, 2), dtype=np.complex64),
        1,
        np.array([1]),
        2,
        np.array([2]),
        np.zeros((2, 3), dtype=f32),
    )
    decimate(np.zeros((1, 32), dtype=f32), 32, 8, np.ones(11, dtype=f32), np.zeros((1, 16), f32))
    reflect(
        np.zeros(16, dtype=f32),
        16,
        12,
        np.zeros((1, 1, 6), dtype=np.int32),
        np.ones((1, 1, 6), dtype=f32),
        np.zeros((1, 6, 2), dtype=np.int32),
        np.ones((1, 6, 2), dtype=f32),
        np.ones(1, dtype=np.bool_),
        np.ones(4, dtype=f32),
        np.zeros(6 * 4, dtype=f32),
        np.zeros(6, dtype=f32),
        np.zeros((1, 4), dtype=f32),
        np.zeros((1, 4), dtype=f32),
    )
    reverb(
        np.zeros((4, 1), dtype=f32),
        np.zeros((8, 2, 1), dtype=f32),
        np.full(8, 2, dtype=np.int64),
        np.zeros(8, dtype=np.int64),
        np.full(8, 0.5, dtype=f32),
        0.2,
        np.zeros((8, 1), dtype=f32),
        np.ones(8, dtype=f32),
        np.ones(8, dtype=f32),
        np.zeros((8, 1), dtype=f32),
        np.zeros((2, 4, 1), dtype=f32),
        np.zeros((2, 1), dtype=f32),
        0.5,
        np.ones(1, dtype=np.bool_),
        np.zeros((1, 8), dtype=f32),
        np.zeros((1, 8), dtype=f32),
    )
