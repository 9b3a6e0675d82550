"""Adaptive jitter buffer for one inbound audio stream (one Opus frame per RTP packet).

Pure logic: ``add()`` is called for each arriving packet, ``pop()`` once per mix tick. It
returns what the tick should do — play a payload, conceal a missing frame, or stay silent —
and keeps the counters the node exports.

Policy, in frames of one tick each:
- playback starts once ``target`` frames are buffered;
- a missing frame with later frames already here is *lost*: conceal it and move on;
- an empty buffer is an *underrun*: conceal, keep waiting for that frame; if it then arrives
  it was *late* (a late event), if a later one arrives first the frame was lost and is skipped
  so the delay does not grow;
- late events raise the target at once (the network got worse); a calm period of
  ``calm_ticks`` with none lowers it by one;
- when, over a window of ``window_ticks``, the buffer never held fewer than ``target + k``
  frames, those k frames are dropped to give the latency back;
- the ring holds ``capacity`` frames; anything further ahead resynchronises (drop oldest).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
_SILENT_AFTER_UNDERRUNS = 25  # 0.5 s of nothing: the sender stopped; stop concealing.
_RESET_JUMP = 3000  # a sequence jump this large is a new stream, not loss.


class AddResult(enum.Enum):
    """What ``add`` did with a packet."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    RESYNC = "resync"


class PopKind(enum.IntEnum):
    """What a tick should do with this stream."""

    SILENT = 0
    PLAY = 1
    CONCEAL = 2


@dataclass(slots=True)
class JitterStats:
    """Counters since the buffer was created (exported as metrics)."""

    received: int = 0
    played: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0
    concealed: int = 0
    underruns: int = 0
    dropped: int = 0
    resyncs: int = 0


def unwrap(value: int, reference: int, modulus: int) -> int:
    """Extend a wrapped counter ``value`` to the unwrapped integer nearest ``reference``."""
    half = modulus // 2
    delta = ((value - reference % modulus + half) % modulus) - half
    return reference + delta


class JitterBuffer:
    """Reorders, de-duplicates and paces one stream's frames; sizes itself from lateness."""

    def __init__(
        self,
        min_frames: int = 1,
        max_frames: int = 8,
        capacity: int = 64,
        window_ticks: int = 50,
        calm_ticks: int = 250,
        frame_samples: int = 960,
        sample_rate: int = 48000,
    ) -> None:
        if not 1 <= min_frames <= max_frames < capacity:
            raise ValueError("need 1 <= min_frames <= max_frames < capacity")
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.capacity = capacity
        self.window_ticks = window_ticks
        self.calm_ticks = calm_ticks
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self.target = min_frames
        self.stats = JitterStats()
        self._payloads: list[bytes | None] = [None] * capacity
        self._seqs: list[int] = [-1] * capacity
        self._arrivals: list[float] = [0.0] * capacity
        self._next = 0  # extended sequence number the next tick wants
        self._highest = -1  # highest extended sequence number received
        self._last_ts = 0  # last extended RTP timestamp
        self._have_packet = False
        self._started = False
        self._waiting = False  # an underrun is waiting for frame ``_next``
        self._underrun_run = 0
        self._window_pos = 0
        self._window_min_depth = 1 << 30
        self._ticks_since_late = 0
        self._late_in_window = 0
        self._last_transit = 0.0
        self.jitter_ms = 0.0
        """RFC 3550 interarrival jitter estimate in milliseconds."""
        self.last_arrival_s = 0.0
        """Arrival time of the most recently played frame (for latency accounting)."""

    # ----------------------------------------------------------------- arrivals
    @property
    def depth(self) -> int:
        """Frames from the next wanted one up to the newest received (gaps included)."""
        if not self._have_packet:
            return 0
        return max(0, self._highest - self._next + 1)

    def add(self, seq: int, timestamp: int, payload: bytes, arrival_s: float) -> AddResult:
        """Store one packet's payload; ``arrival_s`` is a monotonic arrival time in seconds."""
        self.stats.received += 1
        if not self._have_packet:
            self._reset_to(seq, timestamp)
            ext = seq
        else:
            ext = unwrap(seq, self._highest, SEQ_MOD)
        result = AddResult.ACCEPTED
        if abs(ext - self._highest) > _RESET_JUMP:
            self._reset_to(seq, timestamp)
            ext = seq
            self.stats.resyncs += 1
            result = AddResult.RESYNC
        elif ext < self._next:
            if self._started:
                self.stats.late += 1
                self._late_event()
                return AddResult.LATE
            self._next = ext  # before playback starts, an earlier frame extends the start
        elif ext >= self._next + self.capacity:
            # Too far ahead for the ring: drop the oldest frames to make room.
            new_next = ext - self.capacity + 1
            for old in range(self._next, min(new_next, self._highest + 1)):
                self._clear(old)
            self.stats.dropped += new_next - self._next
            self._next = new_next
            self.stats.resyncs += 1
            result = AddResult.RESYNC
        slot = ext % self.capacity
        if self._seqs[slot] == ext:
            self.stats.duplicates += 1
            return AddResult.DUPLICATE
        self._seqs[slot] = ext
        self._payloads[slot] = payload
        self._arrivals[slot] = arrival_s
        self._highest = max(self._highest, ext)
        if self._waiting and ext == self._next:
            # The frame an underrun waited for came after all: it was late, not lost.
            self.stats.late += 1
            self._late_event()
        self._update_jitter(unwrap(timestamp, self._last_ts, TS_MOD), arrival_s)
        return result

    def _reset_to(self, seq: int, timestamp: int) -> None:
        for slot in range(self.capacity):
            self._seqs[slot] = -1
            self._payloads[slot] = None
        self._have_packet = True
        self._highest = seq - 1
        self._next = seq
        self._last_ts = timestamp
        self._started = False
        self._waiting = False
        self._underrun_run = 0
        self._last_transit = 0.0

    def _update_jitter(self, ext_ts: int, arrival_s: float) -> None:
        transit = arrival_s * self.sample_rate - ext_ts
        if self._last_transit:
            d = abs(transit - self._last_transit)
            # RFC 3550 section 6.4.1, in samples, reported in ms.
            self.jitter_ms += (d * 1000.0 / self.sample_rate - self.jitter_ms) / 16.0
        self._last_transit = transit
        self._last_ts = ext_ts

    def _clear(self, ext: int) -> None:
        slot = ext % self.capacity
        if self._seqs[slot] == ext:
            self._seqs[slot] = -1
            self._payloads[slot] = None

    def _late_event(self) -> None:
        self._late_in_window += 1
        self._ticks_since_late = 0
        if self.target < self.max_frames:
            self.target += 1

    # -------------------------------------------------------------------- ticks
    def pop(self) -> tuple[PopKind, bytes | None]:
        """One tick: the payload to decode, or whether to conceal or stay silent."""
        depth = self.depth
        self._end_of_tick_bookkeeping(depth)
        if not self._started:
            if self._have_packet and depth >= self.target:
                self._started = True
            else:
                return PopKind.SILENT, None
        slot = self._next % self.capacity
        if self._seqs[slot] == self._next:
            return self._play(slot)
        if depth > 0:
            # Later frames are here, so frame ``_next`` is missing.
            if self._waiting:
                # We already concealed a tick for it: skip to the next frame we have.
                while self._seqs[self._next % self.capacity] != self._next:
                    self.stats.lost += 1
                    self._next += 1
                return self._play(self._next % self.capacity)
            self.stats.lost += 1
            self.stats.concealed += 1
            self._next += 1
            return PopKind.CONCEAL, None
        # Underrun: nothing buffered at all.
        self.stats.underruns += 1
        self._waiting = True
        self._underrun_run += 1
        if self._underrun_run > _SILENT_AFTER_UNDERRUNS:
            self._started = False
            return PopKind.SILENT, None
        self.stats.concealed += 1
        return PopKind.CONCEAL, None

    def _play(self, slot: int) -> tuple[PopKind, bytes | None]:
        payload = self._payloads[slot]
        self.last_arrival_s = self._arrivals[slot]
        self._payloads[slot] = None
        self._seqs[slot] = -1
        self._next += 1
        self._waiting = False
        self._underrun_run = 0
        self.stats.played += 1
        return PopKind.PLAY, payload

    def _end_of_tick_bookkeeping(self, depth: int) -> None:
        if self._started and depth < self._window_min_depth:
            self._window_min_depth = depth
        self._ticks_since_late += 1
        if self._ticks_since_late >= self.calm_ticks and self.target > self.min_frames:
            self.target -= 1
            self._ticks_since_late = 0
        self._window_pos += 1
        if self._window_pos < self.window_ticks:
            return
        # Drain: the buffer never held fewer than target + k frames during the whole window,
        # so k frames are standing latency: drop them at once (one glitch, not k).
        excess = self._window_min_depth - self.target
        if self._started and excess > 0 and not self._waiting:
            for _ in range(excess):
                self._clear(self._next)
                self._next += 1
            self.stats.dropped += excess
        self._window_pos = 0
        self._window_min_depth = 1 << 30
        self._late_in_window = 0
