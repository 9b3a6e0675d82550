"""A whole tick's Opus work in one call that holds no GIL.

Why: ctypes gives up the GIL around each foreign call and takes it back afterwards. When
the event loop is busy (it is: every peer's ICE, DTLS and SRTP runs there), each take-back
waits for the loop to hand the GIL over, up to the switch interval. A tick of a 32-person
session made 64 such calls (32 decodes, 32 encodes) and spent more time waiting than
coding. Here numba calls libopus directly for every source (or listener) of a tick in one
compiled loop that releases the GIL once, so the loop runs beside it on the other core.

The functions are looked up by name in the same libopus that ``node.media.opus`` loads,
so encoder and decoder handles made there are used here. Rows index into the caller's
preallocated arrays; nothing is allocated per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import llvmlite.binding as llvm
import numpy as np
import numpy.typing as npt
from numba import njit, types

from node.media import opus, priority

MAX_PAYLOAD = 1500
"""Largest RTP payload staged for batch decoding (one Opus frame is at most 1275 bytes)."""

llvm.load_library_permanently(opus._load()._name)

# Pointers are passed as intp (same registers and width as a pointer on every ABI numba
# supports), so the compiled loops can do address arithmetic and still be cached on disk.
_encode: Any = types.ExternalFunction(
    "opus_encode", types.int32(types.intp, types.intp, types.int32, types.intp, types.int32)
)
_decode: Any = types.ExternalFunction(
    "opus_decode_float",
    types.int32(types.intp, types.intp, types.int32, types.intp, types.int32, types.int32),
)


@njit(cache=True, nogil=True)
def encode_rows(
    start: int,
    stop: int,
    handles: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    pcm: npt.NDArray[np.int16],
    out: npt.NDArray[np.uint8],
    sizes: npt.NDArray[np.int32],
) -> None:  # pragma: no cover - compiled; covered through its callers
    """Encode ``pcm[rows[k]]`` (frame × channels s16) with encoder ``handles[k]`` into
    ``out[k]`` for start <= k < stop; ``sizes[k]`` is the packet's length, or libopus's
    error (< 0)."""
    pcm_base = pcm.ctypes.data
    out_base = out.ctypes.data
    frame = pcm.shape[1]
    room = out.shape[1]
    for k in range(start, stop):
        sizes[k] = _encode(
            handles[k], pcm_base + rows[k] * pcm.strides[0], frame,
            out_base + k * out.strides[0], room,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def decode_rows(
    start: int,
    stop: int,
    handles: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    payload: npt.NDArray[np.uint8],
    lengths: npt.NDArray[np.int32],
    out: npt.NDArray[np.float32],
    results: npt.NDArray[np.int32],
) -> None:  # pragma: no cover - compiled; covered through its callers
    """Decode ``payload[rows[k], :lengths[rows[k]]]`` with mono decoder ``handles[k]`` into
    ``out[rows[k]]`` for start <= k < stop; a length of 0 asks the decoder to conceal one frame.
    ``results[k]`` is the number of samples written, or libopus's error (< 0)."""
    payload_base = payload.ctypes.data
    out_base = out.ctypes.data
    frame = out.shape[1]
    for k in range(start, stop):
        row = rows[k]
        size = lengths[row]
        data = payload_base + row * payload.strides[0] if size > 0 else 0
        results[k] = _decode(handles[k], data, size, out_base + row * out.strides[0], frame, 0)


def warm_up() -> None:
    """Compile (or load from the cache) both loops, so the first tick does not wait."""
    encoder, decoder = opus.Encoder(1, 64000), opus.Decoder(1)
    pcm = np.zeros((1, 960, 1), dtype=np.int16)
    out = np.zeros((1, opus.MAX_PACKET), dtype=np.uint8)
    sizes = np.zeros(1, dtype=np.int32)
    rows = np.zeros(1, dtype=np.int64)
    encode_rows(0, 1, np.array([encoder.handle], dtype=np.int64), rows, pcm, out, sizes)
    lengths = np.array([0], dtype=np.int32)
    decode_rows(
        0, 1, np.array([decoder.handle], dtype=np.int64), rows,
        out[:, :MAX_PAYLOAD], lengths, np.zeros((1, 960), dtype=np.float32), sizes,
    )  # fmt: skip


RowJob = Callable[..., None]
"""``encode_rows`` or ``decode_rows``: ``(start, stop, *arrays)``."""


class _Job:
    """One slice of a row job; whichever thread claims it first runs it."""

    __slots__ = ("args", "claim", "error", "fn", "start", "stop")

    def __init__(self, fn: RowJob, start: int, stop: int, args: tuple[object, ...]) -> None:
        self.fn, self.start, self.stop, self.args = fn, start, stop, args
        self.claim = threading.Lock()
        self.error: BaseException | None = None

    def run(self) -> None:
        self.fn(self.start, self.stop, *self.args)


class _Helper:
    """A thread that runs the slices handed to it, unless the caller got there first."""

    def __init__(self, name: str, nice: int = 0) -> None:
        self._nice = nice
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._job: _Job | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        priority.raise_this_thread(self._nice, "a mix helper thread")
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return
            if not job.claim.acquire(blocking=False):
                continue  # the caller ran it already (or this wake-up is a stale one)
            try:
                job.run()
            except BaseException as exc:  # handed back to the caller by finish()
                job.error = exc
            self._done.release()

    def submit(self, fn: RowJob, start: int, stop: int, args: tuple[object, ...]) -> _Job:
        job = _Job(fn, start, stop, args)
        self._job = job
        self._go.release()
        return job

    def finish(self, job: _Job) -> None:
        """Run ``job`` on this thread if the helper has not started it (a busy machine can
        be slow to wake a thread); otherwise wait for the helper to finish it."""
        if job.claim.acquire(blocking=False):
            job.run()
            return
        self._done.acquire()
        if job.error is not None:
            raise job.error

    def close(self) -> None:
        self._job = None
        self._go.release()
        self._thread.join(timeout=5)


class RowWorkers:
    """Splits a tick's row job across ``threads`` threads: the caller's and helpers.

    The compiled loops hold no GIL, so the slices truly run side by side, each on a core.
    Small jobs (fewer than ``min_rows`` rows per thread) run on the caller alone: handing a
    slice over costs more than a few codec calls.
    """

    def __init__(self, threads: int = 1, min_rows: int = 4, nice: int = 0) -> None:
        self.threads = max(1, threads)
        self.min_rows = min_rows
        self._helpers = [_Helper(f"jamnet-mix-helper-{i}", nice) for i in range(self.threads - 1)]

    def run(self, fn: RowJob, count: int, *args: object) -> None:
        """``fn(start, stop, *args)`` over rows [0, count), sliced across the threads."""
        threads = min(self.threads, max(1, count // self.min_rows))
        if threads == 1:
            fn(0, count, *args)
            return
        bounds = [count * i // threads for i in range(threads + 1)]
        helpers = self._helpers[: threads - 1]
        jobs = [
            helper.submit(fn, bounds[i], bounds[i + 1], args)
            for i, helper in enumerate(helpers, start=1)
        ]
        try:
            fn(0, bounds[1], *args)
        finally:
            errors = []
            for helper, job in zip(helpers, jobs, strict=True):
                try:
                    helper.finish(job)
                except BaseException as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]

    def close(self) -> None:
        """Stop the helper threads."""
        for helper in self._helpers:
            helper.close()
        self._helpers = []
        self.threads = 1


INLINE = RowWorkers(1)
"""Runs every job on the caller's thread (the default until a mix clock shares its own)."""
