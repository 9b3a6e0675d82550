"""The mix clocks: a thread per frame size ticking its sessions' mixers, off the event loop.

Each tick, for each session: ``SessionMixer.tick()`` (decode, conceal, render), then every
connected listener's stereo frame is Opus-encoded on this thread, and one
``call_soon_threadsafe`` hands all the packets to the loop, where each listener's
``PacketTrack`` (bounded, drop-oldest) passes them to aiortc's sender.

When the machine falls behind (a CPU stall, another process, the hypervisor), the clock
never turns the stall into latency: a tick that is late runs at once, and once it is more
than ``SKIP_BEHIND_TICKS`` periods (and ``SKIP_BEHIND_S``) behind it skips ahead to the wall
clock. Skipped ticks still move each session's time and every outgoing stream's RTP
timestamp on, so receivers see a gap to conceal, not packets that are late for good. Each
spell of overruns or skips is logged once, with its counts, when it ends.

A tick that wakes late after running on time (this process was stalled: the hypervisor took
the core, another process ran), and the first tick after a skip, first let the event loop
read what reached the sockets meanwhile, for at most ``DRAIN_SHARE`` of a period: otherwise
the tick would mix before the loop has read the packets that arrived during the stall, and
every stream would conceal a frame that is already on this machine (and raise its jitter
buffer for it).
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

from node.media import batch, priority
from node.media.codec import EncodedPacket, OpusEncoder
from node.media.datachannel import ChannelTrack
from node.media.opus import MAX_PACKET
from node.media.outbound import PacketTrack
from node.session.mixer import SessionMixer, Slot, TickReport
from node.session.phase import (
    ALIGN_BIG_GAIN_FRACTION,
    ALIGN_BIG_GAP_S,
    ALIGN_EVERY_S,
    ALIGN_MIN_GAP_S,
    alignment,
    ticks_per,
)

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005
SKIP_BEHIND_TICKS = 2  # further behind than this many periods (and SKIP_BEHIND_S) ...
SKIP_BEHIND_S = 0.015  # ... the clock skips ahead instead of bursting late ticks
SPELL_QUIET_S = 1.0  # an overload spell ends after this long without an overrun or a skip
DRAIN_LATE_S = 0.002  # a tick this late after an on-time one lets the loop read first ...
DRAIN_SHARE = 0.3  # ... for at most this share of a period,
DRAIN_ROUNDS = 6  # ... or until the loop has been round this often (each round reads one
# datagram per socket, and aiortc takes a round or two more to hand a packet on)


@dataclass
class ClockStats:
    """Figures about the clock itself (exported as metrics)."""

    ticks: int = 0
    overruns: int = 0
    skipped: int = 0
    spells: int = 0
    """Overload spells that ended (each logged once with its counts)."""
    drains: int = 0
    """Late ticks that let the event loop read the sockets before mixing."""
    drained: int = 0
    """Packets the event loop handed to the mixers while late ticks waited for it."""
    last_tick_s: float = 0.0
    phase_shift_s: float = 0.0
    nice: int = 0
    """The nice value the clock's thread runs at (``media.realtime_nice`` where allowed)."""

    def add(self, other: ClockStats) -> None:
        """Accumulate ``other``'s counters (several clocks, one set of metrics)."""
        self.ticks += other.ticks
        self.overruns += other.overruns
        self.skipped += other.skipped
        self.spells += other.spells
        self.drains += other.drains
        self.drained += other.drained
        self.last_tick_s = max(self.last_tick_s, other.last_tick_s)
        self.phase_shift_s += other.phase_shift_s
        self.nice = min(self.nice, other.nice)


@dataclass
class _Spell:
    """A run of overrunning or skipped ticks, reported once when it is over."""

    started_s: float
    last_s: float
    overruns: int = 0
    skipped: int = 0
    worst_behind_s: float = 0.0
    worst_tick_s: float = 0.0


@dataclass
class Listener:
    """A connected participant's outbound side."""

    track: PacketTrack | ChannelTrack
    """Where each tick's packet goes: aiortc's sender (RTP) or a data channel."""
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
    ) -> list[tuple[PacketTrack | ChannelTrack, EncodedPacket]]:
        """Every connected listener's mix of this tick as an Opus packet for its track: the
        stereo ones in one GIL-free batch (``node.media.batch``), any others one by one."""
        mixer = self.mixer
        out: list[tuple[PacketTrack | ChannelTrack, EncodedPacket]] = []
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

    def skip(self, frames: int) -> None:
        """The clock skipped ``frames`` ticks: the session's time and every listener's RTP
        timestamp move on by them (receivers conceal the gap instead of buffering it)."""
        self.mixer.skip(frames)
        for listener in list(self.listeners.values()):
            listener.encoder.skip(frames)

    def _encode_failed(self) -> bool:
        """Count a failed encode; whether to log it (the first ten, then one in a thousand,
        so a broken encoder cannot flood the log at 50 ticks a second)."""
        self.encode_errors += 1
        return self.encode_errors <= 10 or self.encode_errors % 1000 == 0


TickObserver = Callable[[float], None]
TickOutput = tuple[
    SessionMedia,
    TickReport,
    list[tuple[PacketTrack | ChannelTrack, EncodedPacket]],
    list[tuple[Slot, float]],
]
"""One session's tick: its report, the packets to send and the arrivals it played."""
LatencyObserver = Callable[[float], None]


class MixClock:
    """Runs ``tick`` for every registered session every ``tick_ms`` on its own thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tick_ms: float = 20,
        on_tick_time: TickObserver | None = None,
        on_node_latency: LatencyObserver | None = None,
        threads: int = 1,
        nice: int = 0,
    ) -> None:
        self._loop = loop
        self.threads = threads
        """Threads that share each tick's Opus work: the clock's own plus ``threads - 1``."""
        self.nice = nice
        """Nice value the clock's threads ask for (node.media.priority); 0 asks for nothing."""
        self._workers = batch.INLINE
        self.tick_ms = tick_ms
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
        self._align_every = ticks_per(ALIGN_EVERY_S, self.period_s)
        self._align_gap = ticks_per(ALIGN_MIN_GAP_S, self.period_s)
        self._align_big_gap = ticks_per(ALIGN_BIG_GAP_S, self.period_s)
        self._skip_behind_s = max(SKIP_BEHIND_TICKS * self.period_s, SKIP_BEHIND_S)
        self._spell: _Spell | None = None
        self.drain_wait_s = DRAIN_SHARE * self.period_s
        """How long a late tick waits at most for the event loop to read the sockets."""
        self._draining = threading.Event()

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

    def __contains__(self, key: str) -> bool:
        return key in self._sessions

    def start(self) -> None:
        """Start the clock thread (idempotent)."""
        if self._thread is not None:
            return
        # The event loop and this thread share the GIL; by default a thread that wants it
        # waits up to 5 ms, a quarter of a tick. Hand it over more often.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        batch.warm_up()  # compiled (or loaded from disk) now, not in the first tick
        self._workers = batch.RowWorkers(self.threads, nice=self.nice)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"jamnet-mix-clock-{self.tick_ms:g}ms", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the clock thread and wait for it (idempotent)."""
        self._stop.set()
        self._draining.set()  # a late tick waiting for the loop (which may be this caller)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._workers.close()
        self._workers = batch.INLINE
        self._end_spell(force=True)

    def _run(self) -> None:
        # The mix's matrix products are small: BLAS worker threads only spin and steal the
        # core the event loop needs (5x slower per product here). One thread, process-wide.
        threadpool_limits(limits=1, user_api="blas")
        self.stats.nice = priority.raise_this_thread(
            self.nice, f"the {self.tick_ms:g} ms mix clock"
        )
        next_tick = time.monotonic()
        on_time = True  # the last tick waited for its time: a late one now means a stall
        skipped = 0
        while not self._stop.is_set():
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
                on_time = True
            elif skipped or (on_time and -delay > DRAIN_LATE_S):
                on_time = False  # the ticks that catch up after it go at once
                self._drain()
            skipped = 0
            started = time.perf_counter()
            batch: list[TickOutput] = []
            # Each tick mixes the frames due at its *scheduled* time, however late it runs:
            # a tick delayed by a stall (steal, a busy core) still plays the frame of its own
            # slot, and the ticks that catch up play theirs, instead of the jitter buffers
            # reading the lateness as a moved schedule (a dropped frame, then a held one).
            for media in self._snapshot:
                batch.append(self._tick_session(media, next_tick))
            elapsed = time.perf_counter() - started
            self.stats.ticks += 1
            self.stats.last_tick_s = elapsed
            for observe in self.tick_observers:
                observe(elapsed)
            now = time.monotonic()
            if elapsed > self.period_s:
                self.stats.overruns += 1
                self._overloaded(now, overrun_s=elapsed)
            if batch:
                try:
                    self._loop.call_soon_threadsafe(self._deliver, batch)
                except RuntimeError:  # loop closed during shutdown
                    return
            next_tick += self.period_s
            if self.stats.ticks % self._align_every == 0:
                next_tick += self._phase_correction(next_tick)
            behind = now - next_tick
            if behind > self._skip_behind_s:
                # Far behind: skip to the wall clock. The skipped ticks' time still passes
                # for every session (beat grid, recording, RTP timestamps).
                skipped = int(behind / self.period_s)
                self.stats.skipped += skipped
                next_tick += skipped * self.period_s
                for media in self._snapshot:
                    try:
                        media.skip(skipped)
                    except Exception:  # never let one session stop the clock
                        log.exception("skipping ticks failed")
                self._overloaded(now, skipped=skipped, behind_s=behind)
            elif self._spell is not None and now - self._spell.last_s > SPELL_QUIET_S:
                self._end_spell()

    def _drain(self) -> None:
        """Let the event loop go round a few times (reading the sockets), briefly."""
        done = self._draining = threading.Event()  # stop() sets it too
        loop = self._loop

        def round_(left: int) -> None:
            if left:
                loop.call_soon(round_, left - 1)
            else:
                done.set()

        try:
            loop.call_soon_threadsafe(round_, DRAIN_ROUNDS)
        except RuntimeError:  # loop closed during shutdown
            return
        self.stats.drains += 1
        waiting = self._waiting()
        if not self._stop.is_set():
            done.wait(self.drain_wait_s)
        self.stats.drained += max(0, self._waiting() - waiting)

    def _waiting(self) -> int:
        """Packets in the sessions' inboxes (read by the loop, not yet mixed)."""
        return sum(
            len(slot.inbox) for media in self._snapshot for slot in media.mixer.slots if slot
        )

    def _overloaded(
        self, now: float, overrun_s: float = 0.0, skipped: int = 0, behind_s: float = 0.0
    ) -> None:
        spell = self._spell
        if spell is None:
            spell = self._spell = _Spell(now, now)
        spell.last_s = now
        if overrun_s:
            spell.overruns += 1
            spell.worst_tick_s = max(spell.worst_tick_s, overrun_s)
        spell.skipped += skipped
        spell.worst_behind_s = max(spell.worst_behind_s, behind_s)

    def _end_spell(self, force: bool = False) -> None:
        """Log the spell that just ended: one line per spell, however long it lasted."""
        spell, self._spell = self._spell, None
        if spell is None:
            return
        self.stats.spells += 1
        # A spell that skipped ticks cost every listener a gap: a warning. Overruns alone
        # were caught up without one (but are still worth a line).
        log.log(
            logging.WARNING if spell.skipped else logging.INFO,
            "mix clock (%g ms) was overloaded for %.1f s: %d ticks overran, %d skipped "
            "(worst tick %.1f ms, worst %.0f ms behind)%s",
            self.tick_ms,
            spell.last_s - spell.started_s,
            spell.overruns,
            spell.skipped,
            spell.worst_tick_s * 1000,
            spell.worst_behind_s * 1000,
            " (clock stopped)" if force else "",
        )

    def _phase_correction(self, next_tick: float) -> float:
        """Shift the tick grid so frames wait as little as possible between their due time and
        the tick that mixes them. One clock serves every session: the phase minimises the
        mean wait over all streams (for one or two musicians, almost none)."""
        period = self.period_s
        phases = []
        for media in self._snapshot:
            mixer = media.mixer
            for slot in mixer.slots:
                due = slot.jitter.next_due_s() if slot is not None else None
                if slot is not None and due is not None:
                    phases.append((due + mixer.uneven_lead_s(slot)) % period)
        since = None if self._last_shift_tick is None else self.stats.ticks - self._last_shift_tick
        if since is not None and since < self._align_big_gap:
            return 0.0
        shift, gain = alignment(next_tick, phases, period)
        # Every move makes the streams due just before the new tick wait one frame (a
        # concealed frame each), so after the first, moves are rare: only a large gain (the
        # phases moved: an overload, a stall, a restarted client) is worth one soon after.
        if (
            since is not None
            and since < self._align_gap
            and gain < ALIGN_BIG_GAIN_FRACTION * period
        ):
            return 0.0
        if shift:
            self._last_shift_tick = self.stats.ticks
            self.stats.phase_shift_s += shift
        return shift

    def _tick_session(self, media: SessionMedia, scheduled: float) -> TickOutput:
        mixer = media.mixer
        mixer.workers = self._workers
        report = mixer.tick(now=scheduled)
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


class MixClocks:
    """One ``MixClock`` per frame size in use, made and started when a session needs it.

    Each frame size needs its own period (and its own phase alignment), so sessions at 5, 10
    and 20 ms each tick on a thread of their own; the observers and counters are shared.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_tick_time: TickObserver | None = None,
        on_node_latency: LatencyObserver | None = None,
        threads: int = 1,
        nice: int = 0,
    ) -> None:
        self._loop = loop
        self.threads = threads
        self.nice = nice
        self.tick_observers: list[TickObserver] = [on_tick_time] if on_tick_time else []
        """Observers of each tick's duration in seconds (metrics, benchmarks)."""
        self.latency_observers: list[LatencyObserver] = [on_node_latency] if on_node_latency else []
        """Observers of node-added latency samples in seconds (metrics, benchmarks)."""
        self._clocks: dict[float, MixClock] = {}
        self._where: dict[str, MixClock] = {}
        self._started = False

    def clock(self, frame_ms: float) -> MixClock:
        """The clock for ``frame_ms`` frames (made, and started if we are running)."""
        clock = self._clocks.get(frame_ms)
        if clock is None:
            clock = MixClock(self._loop, frame_ms, threads=self.threads, nice=self.nice)
            # Shared lists: observers added later reach every clock.
            clock.tick_observers = self.tick_observers
            clock.latency_observers = self.latency_observers
            self._clocks[frame_ms] = clock
            if self._started:
                clock.start()
        return clock

    def add(self, key: str, media: SessionMedia, frame_ms: float) -> None:
        """Start ticking a session on the clock of its frame size."""
        self.remove(key)
        clock = self.clock(frame_ms)
        clock.add(key, media)
        self._where[key] = clock

    def remove(self, key: str) -> None:
        """Stop ticking a session."""
        clock = self._where.pop(key, None)
        if clock is not None:
            clock.remove(key)

    @property
    def clocks(self) -> dict[float, MixClock]:
        """The clocks made so far, by frame size in milliseconds."""
        return dict(self._clocks)

    @property
    def stats(self) -> ClockStats:
        """Every clock's counters added up."""
        total = ClockStats()
        for clock in self._clocks.values():
            total.add(clock.stats)
        return total

    def start(self) -> None:
        """Start every clock made so far; later ones start as they are made (idempotent)."""
        self._started = True
        for clock in self._clocks.values():
            clock.start()

    def stop(self) -> None:
        """Stop every clock's thread (idempotent)."""
        self._started = False
        for clock in self._clocks.values():
            clock.stop()
