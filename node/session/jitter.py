"""Adaptive jitter buffer for one inbound audio stream.

Pure logic: ``add()`` is called for each arriving packet, ``pop(now)`` whenever the mix needs
the stream's next packet (once a tick when packets and ticks are the same length). It returns
what to do — play a payload, conceal a missing packet, hold (conceal one tick without using
anything up), or stay silent — and keeps the counters the node exports.

Units. All of a stream's packets carry ``frame_samples`` samples; the mixer reads each
packet's duration from its Opus header and starts a new buffer when it changes. Packets are
keyed by their RTP *timestamp*, not their sequence number: a sender that skipped time (a node
whose clock fell behind, a DTX pause) leaves a gap that is concealed, never a run of packets
that looks early or late. Every period below is in seconds, so the buffer behaves the same at
5, 10 or 20 ms packets.

It schedules by time, not by counting frames:
- each packet's *transit* is its arrival time minus its RTP timestamp (in seconds); the
  smallest transit over the last ``window_s`` is the path's fastest delivery, and a packet's
  *delay* is how much slower than that it was;
- a packet is due ``delay_s`` after its fastest possible arrival; each pop plays the packet
  that is due, so packets are held only as long as the measured jitter needs;
- when a packet misses its turn, ``delay_s`` rises at once to cover packets that slow (plus a
  margin);
- the *level* is the ``percentile`` of the delays seen over ``window_s``, plus the margin.
  After ``calm_s`` without a late packet the delay falls towards it quickly (``release``
  of the excess every ``adapt_every_s``): one isolated stall or a CPU overload that has
  ended costs a few seconds, not half a minute;
- recurring peaks are remembered: a *peak* is a spell of packets slower than the level (or
  late). When more than one peak happened in the last ``peak_hold_s``, the delay stays above
  them for ``hold_factor`` times the longest of the latest gaps between them after the last
  one, but for no longer than a latency budget allows: ``HOLD_BUDGET_S2`` divided by how far
  the peaks stand above the level. Recurring stalls are then held instead of being relearnt
  after each calm spell, a few milliseconds of everyday jitter for up to ``peak_hold_s``,
  while the tens of milliseconds an overload leaves behind are let go of within about three
  seconds of its end. Peaks that have kept coming for ``STICKY_AFTER_S``, none
  more than ``STICKY_GAP_S`` after the one before (a shared VM's steal, a sender that stalls
  every few seconds: patterns that do not stop), are held for the full ``peak_hold_s``
  after the last one; a peak near the maximum delay (the start of an overload) starts the
  streak afresh. Arrivals alone cannot tell a busy spell from steal (bench/RESULTS.md), but
  the host can: peaks that have kept coming for ``SMALL_STICKY_AFTER_S``, each needing
  no more than ``SMALL_PEAK_S`` of delay and none while this host's CPU was overloaded
  (``node.session.pressure``, Linux's pressure figures), are steady already: a
  hypervisor's steal or a jittery path, which goes on. An overload's peaks are let go of
  fast once it ends; where the host has no pressure figures, any streak needs
  ``STICKY_AFTER_S``.
- a packet not here when due is concealed (the codec extrapolates) and counted *lost*; if it
  arrives afterwards it is *late*; when the schedule moves (delay changed, clocks drifted)
  the buffer drops packets that are overdue or holds for one that is early;
- a buffer that has played every packet at least a whole packet (less ``EARLY_S``) after it
  was due for an ``adapt_every_s`` drops one: the skip's hysteresis (and a clock aimed just
  after due times, modulo a packet) would otherwise let it sit one packet behind for good
  once the delay fell (it cost a 10 ms session about 10 ms per hop);
- the ring holds ``capacity_s`` of packets; anything further ahead resynchronises.
"""

from __future__ import annotations

import collections
import enum
import itertools
import math
from dataclasses import dataclass

from node.session import pressure

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
SILENT_AFTER_S = 0.5  # this long with nothing arriving: the sender stopped; stop concealing.
_RESET_JUMP = 3000  # a sequence jump this large is a new stream, not loss.
_RESET_JUMP_S = 60.0  # ... and so is a timestamp jump this long.
# A packet plays on the first pop at or after its due time. Ticks wobble by a millisecond or
# so, hence a little tolerance before holding, and hysteresis before skipping.
EARLY_S = 0.002  # play a packet up to 2 ms before it is due (at most 0.4 of a packet)
SKIP_SLACK_S = 0.002  # skip once the next packet is a packet plus 2 ms (or 0.1 packet) overdue
PEAK_MERGE_S = 0.25  # slow packets this close together are one peak (one stall or burst)
PEAK_OVER_S = 0.001  # a packet this much slower than the level needs is a peak
HOLD_GAPS = 3  # the hold follows the longest of the latest three gaps between peaks,
HOLD_BUDGET_S2 = 0.02  # and for at most 0.02 s² / (held level - level): 5 ms above for 4 s,
# 10 ms for 2 s, 20 ms for 1 s (the end of an overload is let go of within ~3 s) ...
STICKY_AFTER_S = 20.0  # ... but peaks that have kept coming this long (a steady pattern:
STICKY_PEAKS = 6  # a shared VM's steal, a busy neighbour) are held the full peak_hold_s;
STICKY_GAP_S = 5.0  # a peak this long after the previous one starts a new streak
SMALL_PEAK_S = 0.030  # peaks that need at most this much delay, for this long, none of
SMALL_STICKY_AFTER_S = 4.0  # them while the host was overloaded, are a steady pattern: the
# stalls of a hypervisor's steal or a jittery path, not the end of an overload
OVERLOAD_SHARE = 0.9  # a peak this near the maximum delay starts a streak afresh


def early_s(frame_s: float) -> float:
    """How early a packet of ``frame_s`` may be played (tick wobble tolerance)."""
    return min(EARLY_S, 0.4 * frame_s)


class AddResult(enum.Enum):
    """What ``add`` did with a packet."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    RESYNC = "resync"


class PopKind(enum.IntEnum):
    """What to do with this stream now."""

    SILENT = 0
    PLAY = 1
    CONCEAL = 2
    """A packet's worth is missing: conceal it (the packet's turn is used up)."""
    HOLD = 3
    """The next packet is not due yet (the delay rose): conceal one tick, use nothing up."""


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


@dataclass(slots=True)
class _Peak:
    """A spell of packets slower than the level: when it started and ended, how slow."""

    start_s: float
    end_s: float
    level_s: float


def unwrap(value: int, reference: int, modulus: int) -> int:
    """Extend a wrapped counter ``value`` to the unwrapped integer nearest ``reference``."""
    half = modulus // 2
    delta = ((value - reference % modulus + half) % modulus) - half
    return reference + delta


class JitterBuffer:
    """Reorders, de-duplicates and schedules one stream's packets; sizes itself from jitter."""

    def __init__(
        self,
        min_delay_s: float = 0.0,
        max_delay_s: float = 0.160,
        margin_s: float = 0.002,
        capacity_s: float = 1.28,
        window_s: float = 2.0,
        percentile: float = 0.98,
        calm_s: float = 1.0,
        release: float = 0.75,
        adapt_every_s: float = 0.25,
        peak_hold_s: float = 10.0,
        hold_factor: float = 1.5,
        frame_samples: int = 960,
        sample_rate: int = 48000,
        host: pressure.HostPressure | None = None,
    ) -> None:
        frame_s = frame_samples / sample_rate
        capacity = max(8, math.ceil(capacity_s / frame_s))
        if not 0 <= min_delay_s <= max_delay_s < capacity * frame_s:
            raise ValueError("need 0 <= min_delay_s <= max_delay_s < capacity_s")
        if not 0.0 < release <= 1.0:
            raise ValueError("release is the share of the excess delay let go at once (0-1]")
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.margin_s = margin_s
        self.capacity = capacity
        self.percentile = percentile
        self.calm_s = calm_s
        self.release = release
        self.adapt_every_s = adapt_every_s
        self.peak_hold_s = peak_hold_s
        self.hold_factor = hold_factor
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self.host = host or pressure.host
        """Whether this host's CPU is overloaded (its peaks end when the overload does)."""
        self.frame_s = frame_s
        self._early_s = early_s(frame_s)
        # Between holding (due in more than early_s) and skipping (over a packet overdue) is
        # a band wider than the ticks' wobble, so the two never alternate; a narrow band on
        # the skipping side keeps the buffer from sitting a whole packet behind after the
        # delay falls.
        self._skip_at = 1.0 + max(0.1, SKIP_SLACK_S / frame_s)  # in packets
        self._silent_after = max(1, round(SILENT_AFTER_S / frame_s))
        self.delay_s = min_delay_s
        """Current playout delay beyond the fastest transit."""
        self.stats = JitterStats()
        self._payloads: list[bytes | None] = [None] * capacity
        self._index: list[int] = [-1] * capacity
        self._arrivals: list[float] = [0.0] * capacity
        self._origin_ts = 0  # extended RTP timestamp of index 0
        self._next = 0  # index of the next packet to play
        self._highest = -1  # highest index received
        self._highest_seq = 0
        self._last_ts = 0
        self._have_packet = False
        self._started = False
        self._misses = 0
        # Sliding minimum of transits (monotonic deque of (count, transit)).
        self._window = max(8, round(window_s / frame_s))
        self._transits: collections.deque[tuple[int, float]] = collections.deque()
        self._delays: collections.deque[float] = collections.deque(maxlen=self._window)
        self._count = 0
        self._next_adapt_s: float | None = None
        self._least_lag = math.inf  # the smallest lag (packets overdue) since the last adapt
        self._trim = False  # drop one packet: the last adapt spell was all a packet behind
        self._raised_s = -math.inf
        self._peaks: collections.deque[_Peak] = collections.deque(maxlen=16)
        self._streak_start_s = 0.0
        self._streak_peaks = 0
        self._small_since_s: float | None = None
        self._small_peaks = 0
        """Since when the streak's peaks have all been small ones on a host that is not
        overloaded (None: the latest was not), and how many."""
        """Since when peaks have kept coming (none more than ``peak_hold_s`` apart), and
        how many."""
        """Recent spells of packets slower than ``_level``, for the peak hold."""
        self._level = max_delay_s
        """The delay recent jitter needs (``percentile`` plus margin), updated as it adapts."""
        self.jitter_ms = 0.0
        """RFC 3550 interarrival jitter estimate in milliseconds."""
        self._last_transit: float | None = None
        self._last_delay = 0.0
        self.last_arrival_s = 0.0
        """Arrival time of the most recently played packet (for latency accounting)."""

    # ----------------------------------------------------------------- figures
    @property
    def target(self) -> int:
        """The playout delay in whole packets (at least one: the packet being played)."""
        return max(1, math.ceil(self.delay_s / self.frame_s - 1e-9))

    @property
    def depth(self) -> int:
        """Packets from the next wanted one up to the newest received (gaps included)."""
        if not self._have_packet:
            return 0
        return max(0, self._highest - self._next + 1)

    @property
    def level_s(self) -> float:
        """The delay the recent jitter needs (what the delay falls back to once calm)."""
        return self._level

    def next_due_s(self) -> float | None:
        """Monotonic time at which the next packet is due (None before playback starts)."""
        if not self._started or not self._transits:
            return None
        return self.base_s + self.delay_s + self._ts_of(self._next) / self.sample_rate

    @property
    def base_s(self) -> float:
        """The fastest transit seen over the window (arrival minus media time)."""
        return self._transits[0][1] if self._transits else 0.0

    def _ts_of(self, index: int) -> int:
        return self._origin_ts + index * self.frame_samples

    # ---------------------------------------------------------------- arrivals
    def add(self, seq: int, timestamp: int, payload: bytes, arrival_s: float) -> AddResult:
        """Store one packet's payload; ``arrival_s`` is a monotonic arrival time in seconds."""
        self.stats.received += 1
        result = AddResult.ACCEPTED
        if not self._have_packet:
            self._reset_to(seq, timestamp)
            ext_seq, ext_ts = seq, timestamp
        else:
            ext_seq = unwrap(seq, self._highest_seq, SEQ_MOD)
            ext_ts = unwrap(timestamp, self._last_ts, TS_MOD)
            if (
                abs(ext_seq - self._highest_seq) > _RESET_JUMP
                or abs(ext_ts - self._last_ts) > _RESET_JUMP_S * self.sample_rate
            ):
                self._reset_to(seq, timestamp)
                ext_seq, ext_ts = seq, timestamp
                self.stats.resyncs += 1
                result = AddResult.RESYNC
        index = round((ext_ts - self._origin_ts) / self.frame_samples)
        self._observe(ext_ts, arrival_s)
        self._highest_seq = max(self._highest_seq, ext_seq)
        if index < self._next:
            if self._started:
                # It missed its turn: from now on, wait long enough for packets this slow.
                self.stats.late += 1
                wanted = min(self.max_delay_s, self._last_delay + self.margin_s)
                self.delay_s = max(self.delay_s, wanted)
                self._raised_s = arrival_s
                self._peak(arrival_s, wanted)
                return AddResult.LATE
            self._next = index  # before playback: an earlier start
        elif index >= self._next + self.capacity:
            # Too far ahead for the ring: drop the oldest packets to make room.
            skip = index - self.capacity + 1 - self._next
            for old in range(self._next, min(self._next + skip, self._highest + 1)):
                self._clear(old)
            self._next += skip
            self.stats.dropped += skip
            self.stats.resyncs += 1
            result = AddResult.RESYNC
        slot = index % self.capacity
        if self._index[slot] == index:
            self.stats.duplicates += 1
            return AddResult.DUPLICATE
        self._index[slot] = index
        self._payloads[slot] = payload
        self._arrivals[slot] = arrival_s
        self._highest = max(self._highest, index)
        return result

    def _reset_to(self, seq: int, timestamp: int) -> None:
        for slot in range(self.capacity):
            self._index[slot] = -1
            self._payloads[slot] = None
        self._have_packet = True
        self._origin_ts = timestamp
        self._highest = -1
        self._highest_seq = seq
        self._next = 0
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
        count = self._count
        self._count += 1
        while self._transits and self._transits[-1][1] >= transit:
            self._transits.pop()
        self._transits.append((count, transit))
        while self._transits[0][0] <= count - self._window:
            self._transits.popleft()
        self._last_delay = transit - self._transits[0][1]
        self._delays.append(self._last_delay)
        if self._last_delay + self.margin_s > self._level + PEAK_OVER_S:
            self._peak(arrival_s, min(self.max_delay_s, self._last_delay + self.margin_s))
        if self._last_transit is not None:
            d = abs(transit - self._last_transit) * 1000.0
            self.jitter_ms += (d - self.jitter_ms) / 16.0
        self._last_transit = transit

    def _peak(self, at_s: float, level_s: float) -> None:
        """Remember a packet slower than the level (merged with others of its spell)."""
        peaks = self._peaks
        if peaks and at_s - peaks[-1].end_s < PEAK_MERGE_S:
            last = peaks[-1]
            last.end_s = max(last.end_s, at_s)
            last.level_s = max(last.level_s, level_s)
            self._judge(at_s, level_s, new=False)
            return
        if (
            not peaks
            or at_s - peaks[-1].end_s > STICKY_GAP_S
            or level_s >= OVERLOAD_SHARE * self.max_delay_s
            or self.host.busy(at_s)
        ):
            # A new streak of peaks. One that reaches the buffer's maximum, or comes while
            # the host is overloaded, is an overload's, not a steady pattern: its end is
            # judged by what follows it alone.
            self._streak_start_s, self._streak_peaks = at_s, 0
            self._small_since_s, self._small_peaks = None, 0
        self._streak_peaks += 1
        self._judge(at_s, level_s, new=True)
        peaks.append(_Peak(at_s, at_s, level_s))

    def _judge(self, at_s: float, level_s: float, new: bool) -> None:
        """A peak well above the level, or one while the host is overloaded, is an
        overload's: the run of small peaks that may make the streak steady early starts
        again after it."""
        if level_s > SMALL_PEAK_S or self.host.busy(at_s):
            self._small_since_s, self._small_peaks = None, 0
        elif self._small_since_s is None:
            self._small_since_s, self._small_peaks = at_s, 1
        elif new:
            self._small_peaks += 1

    def _present(self, index: int) -> bool:
        return self._index[index % self.capacity] == index

    def _clear(self, index: int) -> None:
        slot = index % self.capacity
        if self._index[slot] == index:
            self._index[slot] = -1
            self._payloads[slot] = None

    # ------------------------------------------------------------------- ticks
    def pop(self, now_s: float) -> tuple[PopKind, bytes | None]:
        """At monotonic time ``now_s``: what to play for this stream's next packet."""
        self._adapt(now_s)
        if not self._have_packet:
            return PopKind.SILENT, None
        due_ts = (now_s - self.base_s - self.delay_s) * self.sample_rate
        lag = (due_ts - self._ts_of(self._next)) / self.frame_samples  # packets overdue
        early = self._early_s / self.frame_s
        if not self._started:
            if lag < -early:
                return PopKind.SILENT, None  # the first packet is not due yet
            self._started = True
        self._least_lag = min(self._least_lag, lag)
        if lag < -early:
            # The schedule moved later (delay rose): hold this packet back for now.
            self.stats.held += 1
            self.stats.concealed += 1
            return PopKind.HOLD, None
        skip = 0
        if lag >= self._skip_at:
            # The schedule moved earlier (delay fell, clocks drifted): skip overdue packets.
            skip = int(lag)
        elif self._trim and lag >= 1.0 - early and self._present(self._next + 1):
            skip = 1  # a standing packet of lag (see _adapt), and the next one is here
        self._trim = False
        if skip:
            for old in range(self._next, self._next + skip):
                self._clear(old)
            self._next += skip
            self.stats.dropped += skip
        slot = self._next % self.capacity
        self._next += 1
        if self._index[slot] == self._next - 1:
            payload = self._payloads[slot]
            self.last_arrival_s = self._arrivals[slot]
            self._payloads[slot] = None
            self._index[slot] = -1
            self._misses = 0
            self.stats.played += 1
            return PopKind.PLAY, payload
        self.stats.lost += 1
        self._misses += 1
        if self._misses > self._silent_after and self.depth == 0:
            # The sender stopped: go quiet and start afresh with its next packet.
            self._started = False
            self._have_packet = False
            return PopKind.SILENT, None
        self.stats.concealed += 1
        return PopKind.CONCEAL, None

    def _adapt(self, now_s: float) -> None:
        """Every ``adapt_every_s``: the level recent jitter needs; after a calm spell, let the
        delay fall towards it (but not below recurring peaks while they are held)."""
        if self._next_adapt_s is None:
            self._next_adapt_s = now_s + self.adapt_every_s
            return
        if now_s < self._next_adapt_s or not self._delays:
            return
        self._next_adapt_s = now_s + self.adapt_every_s
        self.host.poll(now_s)
        # Every packet played at least a packet (less the early tolerance) after it was due:
        # one can go, and the next still plays no earlier than that tolerance.
        self._trim = self._least_lag >= 1.0 - self._early_s / self.frame_s
        self._least_lag = math.inf
        ordered = sorted(self._delays)
        wanted = ordered[min(len(ordered) - 1, int(self.percentile * len(ordered)))]
        wanted = max(self.min_delay_s, wanted + self.margin_s)
        self._level = wanted
        peaks = self._peaks
        while peaks and peaks[0].end_s < now_s - self.peak_hold_s:
            peaks.popleft()
        if now_s - self._raised_s < self.calm_s:
            return
        if len(peaks) > 1:  # recurring peaks: stay above them while they may come back
            # How often they recur, judged from the latest few: a glitch long before a dense
            # spell (an overload) must not make the spell's end be held for ten seconds.
            recent = list(peaks)[-HOLD_GAPS - 1 :]
            gaps = [b.start_s - a.end_s for a, b in itertools.pairwise(recent)]
            held = max(peak.level_s for peak in peaks)
            # Holding costs latency: the more the peaks stand above what the jitter now
            # needs, the sooner the hold ends (an overload's end is let go of in a second or
            # two; a few milliseconds of everyday jitter are held for up to peak_hold_s).
            budget_s = HOLD_BUDGET_S2 / max(held - wanted, 1e-4)
            hold_s = min(budget_s, self.peak_hold_s, self.hold_factor * max(gaps))
            streak_s = now_s - self._streak_start_s
            steady = self._streak_peaks >= STICKY_PEAKS and (
                streak_s >= STICKY_AFTER_S
                or (
                    self.host.available
                    and self._small_since_s is not None
                    and self._small_peaks >= STICKY_PEAKS
                    and now_s - self._small_since_s >= SMALL_STICKY_AFTER_S
                )
            )
            if steady:
                hold_s = self.peak_hold_s
            if now_s - peaks[-1].end_s < hold_s:
                wanted = max(wanted, held)
        if wanted < self.delay_s:
            self.delay_s = max(wanted, self.delay_s - self.release * (self.delay_s - wanted))
