"""Adaptive jitter buffer for one inbound audio stream (one Opus frame per RTP packet).

Pure logic: ``add()`` is called for each arriving packet, ``pop(now)`` once per mix tick. It
returns what the tick should do — play a payload, conceal a missing frame, or stay silent —
and keeps the counters the node exports.

It schedules by time, not by counting frames:
- each packet's *transit* is its arrival time minus its RTP timestamp (in seconds); the
  smallest transit over the last ``window`` packets is the path's fastest delivery, and a
  packet's *delay* is how much slower than that it was;
- a frame is due ``delay_s`` after its fastest possible arrival; at each tick the buffer
  plays the frame that is due, so frames are held only as long as the measured jitter needs
  (a whole frame of slack is never added just to round up);
- when a packet misses its tick, ``delay_s`` rises at once to cover packets that slow (plus
  a margin); after ``calm_ticks`` without a late packet it falls back, at most
  ``release_s`` per second, towards the ``percentile`` of recent delays (plus the margin);
- recurring peaks are remembered: when packets came slower than that level (or late) on
  more than one occasion in the last ``peak_hold_s`` (a busy sender or node that stalls
  every few seconds, a link with periodic bursts), the delay does not fall below the
  highest of those peaks until they are that old. Without this the delay would fall back
  after every calm spell only to be caught by the next stall, concealing twice (the late
  frame, then the frame held while the delay rises) each time; a lone glitch still decays
  after ``calm_ticks``;
- a frame not here when due is concealed (the codec extrapolates) and counted *lost*; if it
  arrives afterwards it is *late*; when the schedule moves (delay changed, clocks drifted)
  the buffer drops frames that are overdue or holds (conceals) for one that is early;
- the ring holds ``capacity`` frames; anything further ahead resynchronises.
"""

from __future__ import annotations

import collections
import enum
import math
from dataclasses import dataclass

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
_SILENT_AFTER_MISSES = 25  # 0.5 s of nothing: the sender stopped; stop concealing.
_RESET_JUMP = 3000  # a sequence jump this large is a new stream, not loss.
# A frame plays on the first tick at or after its due time. Ticks wobble by a millisecond or
# so, hence a little tolerance before holding, and hysteresis before skipping.
EARLY_FRAMES = 0.1  # play a frame up to 2 ms before it is due
_SKIP_AT_FRAMES = 1.3  # skip once the next frame is 26 ms overdue
_PEAK_EVENT_TICKS = 50  # slow packets within a second of each other are one peak


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
    held: int = 0
    dropped: int = 0
    resyncs: int = 0


def unwrap(value: int, reference: int, modulus: int) -> int:
    """Extend a wrapped counter ``value`` to the unwrapped integer nearest ``reference``."""
    half = modulus // 2
    delta = ((value - reference % modulus + half) % modulus) - half
    return reference + delta


class JitterBuffer:
    """Reorders, de-duplicates and schedules one stream's frames; sizes itself from jitter."""

    def __init__(
        self,
        min_delay_s: float = 0.0,
        max_delay_s: float = 0.160,
        margin_s: float = 0.002,
        capacity: int = 64,
        window: int = 250,
        percentile: float = 0.98,
        calm_ticks: int = 250,
        release_s: float = 0.005,
        peak_hold_s: float = 10.0,
        frame_samples: int = 960,
        sample_rate: int = 48000,
    ) -> None:
        frame_s = frame_samples / sample_rate
        if not 0 <= min_delay_s <= max_delay_s < capacity * frame_s:
            raise ValueError("need 0 <= min_delay_s <= max_delay_s < capacity frames")
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.margin_s = margin_s
        self.capacity = capacity
        self.percentile = percentile
        self.calm_ticks = calm_ticks
        self.release_s = release_s
        self.peak_hold_ticks = round(peak_hold_s / frame_s)
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self.frame_s = frame_s
        self.delay_s = min_delay_s
        """Current playout delay beyond the fastest transit."""
        self.stats = JitterStats()
        self._payloads: list[bytes | None] = [None] * capacity
        self._seqs: list[int] = [-1] * capacity
        self._arrivals: list[float] = [0.0] * capacity
        self._next = 0  # extended sequence number of the next frame to play
        self._next_ts = 0  # its extended RTP timestamp
        self._highest = -1
        self._last_ts = 0
        self._have_packet = False
        self._started = False
        self._misses = 0
        # Sliding minimum of transits (monotonic deque of (index, transit)).
        self._transits: collections.deque[tuple[int, float]] = collections.deque()
        self._delays: collections.deque[float] = collections.deque(maxlen=window)
        self._window = window
        self._count = 0
        self._ticks = 0
        self._ticks_since_raise = 0
        self._peaks: collections.deque[tuple[int, float]] = collections.deque(maxlen=16)
        """(tick, delay wanted) of recent packets slower than ``_level``, for the peak hold."""
        self._level = max_delay_s
        """The delay recent jitter needs (``percentile`` plus margin), updated each second."""
        self.jitter_ms = 0.0
        """RFC 3550 interarrival jitter estimate in milliseconds."""
        self._last_transit: float | None = None
        self._last_delay = 0.0
        self.last_arrival_s = 0.0
        """Arrival time of the most recently played frame (for latency accounting)."""

    # ----------------------------------------------------------------- figures
    @property
    def target(self) -> int:
        """The playout delay in whole frames (at least one: the frame being played)."""
        return max(1, math.ceil(self.delay_s / self.frame_s - 1e-9))

    @property
    def depth(self) -> int:
        """Frames from the next wanted one up to the newest received (gaps included)."""
        if not self._have_packet:
            return 0
        return max(0, self._highest - self._next + 1)

    def next_due_s(self) -> float | None:
        """Monotonic time at which the next frame is due (None before playback starts)."""
        if not self._started or not self._transits:
            return None
        return self.base_s + self.delay_s + self._next_ts / self.sample_rate

    @property
    def base_s(self) -> float:
        """The fastest transit seen over the window (arrival minus media time)."""
        return self._transits[0][1] if self._transits else 0.0

    # ---------------------------------------------------------------- arrivals
    def add(self, seq: int, timestamp: int, payload: bytes, arrival_s: float) -> AddResult:
        """Store one packet's payload; ``arrival_s`` is a monotonic arrival time in seconds."""
        self.stats.received += 1
        if not self._have_packet:
            self._reset_to(seq, timestamp)
            ext, ext_ts = seq, timestamp
        else:
            ext = unwrap(seq, self._highest, SEQ_MOD)
            ext_ts = unwrap(timestamp, self._last_ts, TS_MOD)
        result = AddResult.ACCEPTED
        if abs(ext - self._highest) > _RESET_JUMP:
            self._reset_to(seq, timestamp)
            ext, ext_ts = seq, timestamp
            self.stats.resyncs += 1
            result = AddResult.RESYNC
        self._observe(ext_ts, arrival_s)
        if ext < self._next:
            if self._started:
                # It missed its tick: from now on, wait long enough for packets this slow.
                self.stats.late += 1
                wanted = min(self.max_delay_s, self._last_delay + self.margin_s)
                self.delay_s = max(self.delay_s, wanted)
                self._ticks_since_raise = 0
                self._peak(wanted)
                return AddResult.LATE
            self._next, self._next_ts = ext, ext_ts  # before playback: an earlier start
        elif ext >= self._next + self.capacity:
            # Too far ahead for the ring: drop the oldest frames to make room.
            skip = ext - self.capacity + 1 - self._next
            for old in range(self._next, min(self._next + skip, self._highest + 1)):
                self._clear(old)
            self._next += skip
            self._next_ts += skip * self.frame_samples
            self.stats.dropped += skip
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
        return result

    def _reset_to(self, seq: int, timestamp: int) -> None:
        for slot in range(self.capacity):
            self._seqs[slot] = -1
            self._payloads[slot] = None
        self._have_packet = True
        self._highest = seq - 1
        self._next = seq
        self._next_ts = timestamp
        self._last_ts = timestamp
        self._started = False
        self._misses = 0
        self._transits.clear()
        self._delays.clear()
        self._peaks.clear()
        self._level = self.max_delay_s
        self._last_transit = None

    def _observe(self, ext_ts: int, arrival_s: float) -> None:
        """Update the transit window, the delay and the RFC 3550 jitter."""
        self._last_ts = max(self._last_ts, ext_ts)
        transit = arrival_s - ext_ts / self.sample_rate
        index = self._count
        self._count += 1
        while self._transits and self._transits[-1][1] >= transit:
            self._transits.pop()
        self._transits.append((index, transit))
        while self._transits[0][0] <= index - self._window:
            self._transits.popleft()
        self._last_delay = transit - self._transits[0][1]
        self._delays.append(self._last_delay)
        if self._last_delay + self.margin_s > self._level:
            self._peak(min(self.max_delay_s, self._last_delay + self.margin_s))
        if self._last_transit is not None:
            d = abs(transit - self._last_transit) * 1000.0
            self.jitter_ms += (d - self.jitter_ms) / 16.0
        self._last_transit = transit

    def _peak(self, level: float) -> None:
        """Remember a packet slower than the jitter level (merged with others of its stall)."""
        if self._peaks and self._ticks - self._peaks[-1][0] < _PEAK_EVENT_TICKS:
            # The same stall or burst: one peak, as high as its slowest packet.
            self._peaks[-1] = (self._peaks[-1][0], max(self._peaks[-1][1], level))
        else:
            self._peaks.append((self._ticks, level))

    def _clear(self, ext: int) -> None:
        slot = ext % self.capacity
        if self._seqs[slot] == ext:
            self._seqs[slot] = -1
            self._payloads[slot] = None

    # ------------------------------------------------------------------- ticks
    def pop(self, now_s: float) -> tuple[PopKind, bytes | None]:
        """One tick at monotonic time ``now_s``: what to play for this stream."""
        self._adapt()
        if not self._have_packet:
            return PopKind.SILENT, None
        due_ts = (now_s - self.base_s - self.delay_s) * self.sample_rate
        lag = (due_ts - self._next_ts) / self.frame_samples  # frames overdue (0: just due)
        if not self._started:
            if lag < -EARLY_FRAMES:
                return PopKind.SILENT, None  # the first frame is not due yet
            self._started = True
        if lag < -EARLY_FRAMES:
            # The schedule moved later (delay rose): hold this frame back one tick.
            self.stats.held += 1
            self.stats.concealed += 1
            return PopKind.CONCEAL, None
        if lag >= _SKIP_AT_FRAMES:
            # The schedule moved earlier (delay fell, clocks drifted): skip overdue frames.
            skip = int(lag)
            for old in range(self._next, self._next + skip):
                self._clear(old)
            self._next += skip
            self._next_ts += skip * self.frame_samples
            self.stats.dropped += skip
        slot = self._next % self.capacity
        self._next += 1
        self._next_ts += self.frame_samples
        if self._seqs[slot] == self._next - 1:
            payload = self._payloads[slot]
            self.last_arrival_s = self._arrivals[slot]
            self._payloads[slot] = None
            self._seqs[slot] = -1
            self._misses = 0
            self.stats.played += 1
            return PopKind.PLAY, payload
        self.stats.lost += 1
        self._misses += 1
        if self._misses > _SILENT_AFTER_MISSES and self.depth == 0:
            # The sender stopped: go quiet and start afresh with its next packet.
            self._started = False
            self._have_packet = False
            return PopKind.SILENT, None
        self.stats.concealed += 1
        return PopKind.CONCEAL, None

    def _adapt(self) -> None:
        """Once a second: the level recent jitter needs; after a calm spell, let the delay
        fall towards it (but not below recurring peaks)."""
        self._ticks += 1
        self._ticks_since_raise += 1
        if self._ticks % 50 or not self._delays:
            return
        ordered = sorted(self._delays)
        wanted = ordered[min(len(ordered) - 1, int(self.percentile * len(ordered)))]
        wanted = max(self.min_delay_s, wanted + self.margin_s)
        self._level = wanted
        while self._peaks and self._peaks[0][0] < self._ticks - self.peak_hold_ticks:
            self._peaks.popleft()
        if self._ticks_since_raise < self.calm_ticks:
            return
        if len(self._peaks) > 1:  # recurring peaks: stay above them while they recur
            wanted = max(wanted, *(peak for _, peak in self._peaks))
        if wanted < self.delay_s:
            self.delay_s = max(wanted, self.delay_s - self.release_s)
