"""The mix clock: one thread ticking every session's mixer every frame, off the event loop.

Each tick, for each session: ``SessionMixer.tick()`` (decode, conceal, render), then every
connected listener's stereo frame is Opus-encoded on this thread, and one
``call_soon_threadsafe`` hands all the packets to the loop, where each listener's
``PacketTrack`` (bounded, drop-oldest) passes them to aiortc's sender.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from node.media import batch
from node.media.codec import EncodedPacket, OpusEncoder
from node.media.opus import MAX_PACKET
from node.media.outbound import PacketTrack
from node.session.mixer import SessionMixer, Slot, TickReport
from node.session.phase import ALIGN_EVERY_TICKS, ALIGN_MIN_GAP_TICKS, alignment_shift

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005
_RESYNC_AFTER_TICKS = 5  # further behind than this: skip ahead instead of bursting


@dataclass
class ClockStats:
    """Figures about the clock itself (exported as metrics)."""

    ticks: int = 0
    overruns: int = 0
    skipped: int = 0
    last_tick_s: float = 0.0
    phase_shift_s: float = 0.0


@dataclass
class Listener:
    """A connected participant's outbound side."""

    track: PacketTrack
    encoder: OpusEncoder


@dataclass
class SessionMedia:
    """A session's mixer plus the encoders and tracks of its connected listeners."""

    mixer: SessionMixer
    listeners: dict[int, Listener] = field(default_factory=dict)
    on_tick: Callable[[TickReport], None] | None = None
    """Called on the event loop after each delivered tick (beats, levels)."""
    encode_errors: int = 0
    """Listener mixes that failed to encode (each logged, then one in a thousand)."""
    # The tick's batched encode: which encoder and mix row, and where the packets land.
    _handles: npt.NDArray[np.int64] = field(init=False, repr=False)
    _rows: npt.NDArray[np.int64] = field(init=False, repr=False)
    _packets: npt.NDArray[np.uint8] = field(init=False, repr=False)
    _sizes: npt.NDArray[np.int32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rows = self.mixer.out_pcm.shape[0]
        self._handles = np.zeros(rows, dtype=np.int64)
        self._rows = np.zeros(rows, dtype=np.int64)
        self._packets = np.zeros((rows, MAX_PACKET), dtype=np.uint8)
        self._sizes = np.zeros(rows, dtype=np.int32)

    def encode(
        self, workers: batch.RowWorkers = batch.INLINE
    ) -> list[tuple[PacketTrack, EncodedPacket]]:
        """Every connected listener's mix of this tick as an Opus packet for its track: the
        stereo ones in one GIL-free batch (``node.media.batch``), any others one by one."""
        mixer = self.mixer
        out: list[tuple[PacketTrack, EncodedPacket]] = []
        batched: list[Listener] = []
        for index, listener in list(self.listeners.items()):
            handle = listener.encoder.handle
            if listener.encoder.channels == 2 and handle:
                self._handles[len(batched)] = handle
                self._rows[len(batched)] = index
                batched.append(listener)
                continue
            try:
                for packet in listener.encoder.encode(mixer.out_pcm[index]):
                    out.append((listener.track, packet))
            except Exception:  # never let one listener's encoder stop the clock
                if self._encode_failed():
                    log.exception("encoding the mix for slot %d failed", index)
        if not batched:
            return out
        workers.run(
            batch.encode_rows, len(batched),
            self._handles, self._rows, mixer.out_pcm, self._packets, self._sizes,
        )  # fmt: skip
        for k, listener in enumerate(batched):
            size = int(self._sizes[k])
            if size < 0:
                if self._encode_failed():
                    log.error(
                        "encoding the mix for slot %d failed (opus error %d, %d so far)",
                        self._rows[k], size, self.encode_errors,
                    )  # fmt: skip
                continue
            out.append((listener.track, listener.encoder.packet(self._packets[k, :size].tobytes())))
        return out

    def _encode_failed(self) -> bool:
        """Count a failed encode; whether to log it (the first ten, then one in a thousand,
        so a broken encoder cannot flood the log at 50 ticks a second)."""
        self.encode_errors += 1
        return self.encode_errors <= 10 or self.encode_errors % 1000 == 0


TickObserver = Callable[[float], None]
TickOutput = tuple[
    SessionMedia, TickReport, list[tuple[PacketTrack, EncodedPacket]], list[tuple[Slot, float]]
]
"""One session's tick: its report, the packets to send and the arrivals it played."""
LatencyObserver = Callable[[float], None]


class MixClock:
    """Runs ``tick`` for every registered session every ``tick_ms`` on its own thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tick_ms: int = 20,
        on_tick_time: TickObserver | None = None,
        on_node_latency: LatencyObserver | None = None,
        threads: int = 1,
    ) -> None:
        self._loop = loop
        self.threads = threads
        """Threads that share each tick's Opus work: the clock's own plus ``threads - 1``."""
        self._workers = batch.INLINE
        self.period_s = tick_ms / 1000.0
        self._sessions: dict[str, SessionMedia] = {}
        self._snapshot: tuple[SessionMedia, ...] = ()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick_observers: list[TickObserver] = []
        """Observers of each tick's duration in seconds (metrics, benchmarks)."""
        if on_tick_time is not None:
            self.tick_observers.append(on_tick_time)
        self.latency_observers: list[LatencyObserver] = []
        """Extra observers of node-added latency samples in seconds (benchmarks)."""
        if on_node_latency is not None:
            self.latency_observers.append(on_node_latency)
        self.stats = ClockStats()
        self._last_shift_tick: int | None = None

    def add(self, key: str, media: SessionMedia) -> None:
        """Start ticking a session."""
        with self._lock:
            self._sessions[key] = media
            self._snapshot = tuple(self._sessions.values())

    def remove(self, key: str) -> None:
        """Stop ticking a session."""
        with self._lock:
            self._sessions.pop(key, None)
            self._snapshot = tuple(self._sessions.values())

    def start(self) -> None:
        """Start the clock thread (idempotent)."""
        if self._thread is not None:
            return
        # The event loop and this thread share the GIL; by default a thread that wants it
        # waits up to 5 ms, a quarter of a tick. Hand it over more often.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        batch.warm_up()  # compiled (or loaded from disk) now, not in the first tick
        self._workers = batch.RowWorkers(self.threads)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="jamnet-mix-clock", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the clock thread and wait for it (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._workers.close()
        self._workers = batch.INLINE

    def _run(self) -> None:
        # The mix's matrix products are small: BLAS worker threads only spin and steal the
        # core the event loop needs (5x slower per product here). One thread, process-wide.
        threadpool_limits(limits=1, user_api="blas")
        next_tick = time.monotonic()
        while not self._stop.is_set():
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            started = time.perf_counter()
            batch: list[TickOutput] = []
            for media in self._snapshot:
                batch.append(self._tick_session(media))
            elapsed = time.perf_counter() - started
            self.stats.ticks += 1
            self.stats.last_tick_s = elapsed
            for observe in self.tick_observers:
                observe(elapsed)
            if elapsed > self.period_s:
                self.stats.overruns += 1
            if batch:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, batch)
                except RuntimeError:  # loop closed during shutdown
                    return
            next_tick += self.period_s
            if self.stats.ticks % ALIGN_EVERY_TICKS == 0:
                next_tick += self._phase_correction(next_tick)
            behind = time.monotonic() - next_tick
            if behind > _RESYNC_AFTER_TICKS * self.period_s:
                skipped = int(behind / self.period_s)
                self.stats.skipped += skipped
                next_tick += skipped * self.period_s

    def _phase_correction(self, next_tick: float) -> float:
        """Shift the tick grid so frames wait as little as possible between their due time and
        the tick that mixes them. One clock serves every session: the phase minimises the
        mean wait over all streams (for one or two musicians, almost none)."""
        period = self.period_s
        phases = []
        for media in self._snapshot:
            for slot in media.mixer.slots:
                due = slot.jitter.next_due_s() if slot is not None else None
                if due is not None:
                    phases.append(due % period)
        if self._last_shift_tick is not None and (
            self.stats.ticks - self._last_shift_tick < ALIGN_MIN_GAP_TICKS
        ):
            return 0.0
        shift = alignment_shift(next_tick, phases, period)
        if shift:
            # Every move makes the streams due just before the new tick wait one frame (a
            # concealed frame each), so after the first, moves are rare.
            self._last_shift_tick = self.stats.ticks
            self.stats.phase_shift_s += shift
        return shift

    def _tick_session(self, media: SessionMedia) -> TickOutput:
        mixer = media.mixer
        mixer.workers = self._workers
        report = mixer.tick()
        try:
            out = media.encode(self._workers)
        except Exception:  # never let encoding stop the clock
            log.exception("encoding the session's mixes failed")
            out = []
        arrivals = [
            (slot, slot.played_arrival_s) for slot in mixer.slots if slot and slot.played_arrival_s
        ]
        return media, report, out, arrivals

    def _deliver(
        self,
        batch: list[TickOutput],
    ) -> None:
        now = time.monotonic()
        for media, report, packets, arrivals in batch:
            for track, packet in packets:
                track.offer(packet)
            for slot, arrival in arrivals:
                added = now - arrival
                slot.node_added_ms += (added * 1000.0 - slot.node_added_ms) * 0.1
                for observe in self.latency_observers:
                    observe(added)
            if media.on_tick is not None:
                try:
                    media.on_tick(report)
                except Exception:
                    log.exception("session tick observer failed")
