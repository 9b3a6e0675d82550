"""One session's real-time mix: jitter buffers in, a personal stereo mix per listener out.

Pure and synchronous. The event loop thread only *posts*: packets go into each slot's
bounded inbox (keep newest, drop oldest) and control changes into a command queue; the mix
clock thread calls ``tick()`` every frame, which applies the commands, drains the inboxes,
decodes or conceals one frame per source (every Opus source in one call that releases the
GIL, see ``node.media.batch``), and renders every listener's mix into
preallocated buffers. ``tick()`` never raises: failures are counted.

Row/column layout of the mix matrices (``capacity`` = most participants):
- rows 0..capacity-1 are participants as listeners, row ``capacity`` is the recording mix;
- columns 0..capacity-1 are participants as sources, column ``capacity`` is the click.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from node.media import batch
from node.media.batch import MAX_PAYLOAD
from node.session.jitter import JitterBuffer, PopKind
from node.session.metronome import Metronome
from node.session.render import STAGE_HALF_M, Renderer, StereoPanner

if TYPE_CHECKING:
    from node.spatial.room import Room

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
ACTIVE_RMS = 10 ** (-50 / 20)  # a source louder than -50 dBFS counts as playing
CLICK_GAIN = 0.6
CONCEAL_DECAY_PER_S = 0.6**50  # concealment decays like 0.6 per 20 ms frame (0.6 per frame
# before frame sizes other than 20 ms existed), whatever the frame size
INBOX_S = 1.28  # a stall this long fills a source's inbox; then the oldest is dropped
CODEC_CONCEAL_S = 0.1  # after 100 ms of loss, fade out instead of extrapolating further
FADE_IN_S = 0.002  # real audio after concealment fades in over this long
MAX_PACKET_SAMPLES = 5760  # the longest Opus packet: 120 ms at 48 kHz
RESIZE_AFTER = 3  # packets of a new duration in a row before a stream's unit changes


class FrameDecoder(Protocol):
    """Decodes one encoded frame into ``out`` (float32 mono, -1..1); False on a bad payload."""

    def decode(self, payload: bytes, out: F32) -> bool:
        """Decode ``payload`` into ``out``."""

    # Optionally also ``conceal(out) -> bool``: the codec's own loss concealment, and
    # ``samples_of(payload) -> int``: a packet's duration (0 when it cannot tell).


class RecordingSink(Protocol):
    """Takes every tick's frames while a session records (``node.media.recorder``)."""

    def capture(self, mixer: SessionMixer) -> None:
        """Copy this tick's source and mix frames (called on the mix thread)."""

    def gap(self, frames: int) -> None:
        """``frames`` ticks were skipped (the machine fell behind): keep the timeline."""


class LocalSource(Protocol):
    """A source made on this node (the AI bandmate): fills frames at mix-clock positions."""

    def fill(self, start: int, out: F32) -> None:
        """Write samples [start, start + len(out)) of this source into ``out``."""


@dataclass
class SlotCounters:
    """Per-participant figures the node exports and records."""

    active_frames: int = 0
    energy: float = 0.0  # sum of mean-square over all frames
    frames: int = 0
    decode_errors: int = 0
    inbox_dropped: int = 0
    packet_resizes: int = 0
    """Times the stream's packet duration changed (its jitter buffer starts afresh)."""


@dataclass
class Slot:
    """A participant's place in the mix."""

    key: str
    decoder: FrameDecoder
    jitter: JitterBuffer
    inbox: collections.deque[tuple[int, int, bytes, float]]
    counters: SlotCounters = field(default_factory=SlotCounters)
    local: LocalSource | None = None
    """Set for a node-made source: no packets, no jitter buffer."""
    carry: F32 | None = None
    """Decoded samples not played yet, when this stream's packets are longer or shorter than
    the session's frames (a browser that sends 10 ms packets into a 5 ms session)."""
    carried: int = 0
    """How many samples at the start of ``carry`` are still to be played."""
    last_packet_s: float = 0.0
    """When this source's latest packet arrived (monotonic; 0 before the first)."""
    resize_to: int = 0
    resize_votes: int = 0
    """Consecutive packets of another duration than the jitter buffer's (``resize_to``)."""
    concealing: int = 0
    played_arrival_s: float = 0.0
    """Arrival time of the frame played in the last tick (0 when none was played)."""
    node_added_ms: float = 0.0
    """Smoothed arrival-to-departure time of this participant's frames (set by the clock)."""


@dataclass(frozen=True)
class TickReport:
    """What one tick did, for the adapters (delivery, events, metrics)."""

    sample: int
    beat: int | None
    duration_s: float


class SessionMixer:
    """Personal mixes for up to ``capacity`` participants of one session."""

    def __init__(
        self,
        capacity: int,
        tempo_bpm: float = 120.0,
        beats_per_bar: int = 4,
        frame_samples: int = 960,
        sample_rate: int = 48000,
        jitter_min_delay_s: float = 0.0,
        jitter_max_delay_s: float = 0.160,
        renderer_factory: Callable[[int, int, tuple[int, ...]], Renderer] | None = None,
        binaural: bool = True,
    ) -> None:
        self.capacity = capacity
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self.frame_s = frame_samples / sample_rate
        self._jitter_min = jitter_min_delay_s
        self._jitter_max = jitter_max_delay_s
        self._inbox_len = math.ceil(INBOX_S / self.frame_s)
        self._codec_conceal = max(1, round(CODEC_CONCEAL_S / self.frame_s))
        self._conceal_decay = CONCEAL_DECAY_PER_S**self.frame_s
        rows = capacity + 1
        self.slots: list[Slot | None] = [None] * capacity
        self.positions = np.zeros((rows, 2), dtype=np.float32)
        self.positions[capacity] = (0.0, -STAGE_HALF_M)  # the recording mix hears from the front
        self.orientations = np.zeros((rows, 2), dtype=np.float32)
        """Each listener's (yaw, pitch) in degrees; yaw 0 faces +y, +90 faces +x."""
        self._binaural_default = binaural
        self.binaural = np.full(rows, binaural, dtype=bool)
        self.binaural[capacity] = False  # the recording mix is for loudspeakers: stereo
        self.room_on = np.ones(rows, dtype=bool)
        self._distance = np.ones(rows, dtype=bool)
        self._distance[capacity] = False  # ... and hears everyone at full level
        self._modes_dirty = True
        self.user_gain = np.ones((rows, rows), dtype=np.float32)
        self.input_gain = np.ones(rows, dtype=np.float32)
        """Each source's own input gain (its musician's gain knob), in every mix."""
        self.self_monitor = np.zeros(capacity, dtype=bool)
        self.click_on = np.zeros(rows, dtype=bool)
        self.weights = np.zeros((rows, rows), dtype=np.float32)
        self.sources = np.zeros((rows, frame_samples), dtype=np.float32)
        self._last = np.zeros((capacity, frame_samples), dtype=np.float32)
        self._ramp = np.linspace(1.0, self._conceal_decay, frame_samples, dtype=np.float32)
        fade = min(frame_samples, round(FADE_IN_S * sample_rate))
        self._fade_in = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        self.out_left = np.zeros((rows, frame_samples), dtype=np.float32)
        self.out_right = np.zeros((rows, frame_samples), dtype=np.float32)
        self.out_pcm = np.zeros((rows, frame_samples, 2), dtype=np.int16)
        self._energy = np.zeros(rows, dtype=np.float32)
        # Opus sources staged for the tick's one batched decode.
        self._payload = np.zeros((capacity, MAX_PAYLOAD), dtype=np.uint8)
        self._payload_rows = [row.data for row in self._payload]
        self._payload_len = np.zeros(capacity, dtype=np.int32)
        self._stage_handles = np.zeros(capacity, dtype=np.int64)
        self._stage_rows = np.zeros(capacity, dtype=np.int64)
        self._stage_results = np.zeros(capacity, dtype=np.int32)
        self._staged = 0
        self.workers: batch.RowWorkers = batch.INLINE
        """Threads that share the batched decode (the mix clock hands over its own)."""
        self.levels = np.zeros(capacity, dtype=np.float32)
        """Latest RMS level of each participant's source (read by the event loop)."""
        factory = renderer_factory or StereoPanner
        self.renderer = factory(rows, rows, (capacity,))
        self.metronome = Metronome(tempo_bpm, beats_per_bar, sample_rate)
        self.sample = 0
        self.ticks = 0
        self.tick_errors = 0
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._geometry_dirty = True
        self._weights_dirty = True
        self.recording_sink: RecordingSink | None = None
        self.skipped = 0
        """Ticks the clock skipped for this session (the machine fell behind)."""
        self._lock = threading.Lock()  # only guards slot allocation against two posters

    # ---------------------------------------------------- called from the loop
    def post(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the mix thread at the start of the next tick."""
        self._commands.append(command)

    def allocate(self, key: str, decoder: FrameDecoder, local: LocalSource | None = None) -> int:
        """Reserve a slot for participant ``key``; it joins the mix at the next tick."""
        with self._lock:
            for index, slot in enumerate(self.slots):
                if slot is None:
                    self.slots[index] = Slot(
                        key=key,
                        decoder=decoder,
                        jitter=self._jitter(self.frame_samples),
                        inbox=collections.deque(maxlen=self._inbox_len),
                        local=local,
                    )
                    self.post(functools.partial(self._reset_slot, index))
                    return index
        raise OverflowError("no free slot in this session's mix")

    def _jitter(self, packet_samples: int) -> JitterBuffer:
        return JitterBuffer(
            self._jitter_min,
            self._jitter_max,
            frame_samples=packet_samples,
            sample_rate=self.sample_rate,
        )

    def release(self, index: int) -> None:
        """Free a slot (the participant left)."""

        def command() -> None:
            self.slots[index] = None
            self._reset_slot(index)

        self.post(command)

    def push_packet(
        self, index: int, seq: int, timestamp: int, payload: bytes, arrival: float | None = None
    ) -> None:
        """Queue an arriving RTP payload; the oldest is dropped when the inbox is full."""
        slot = self.slots[index]
        if slot is None:
            return
        if len(slot.inbox) == slot.inbox.maxlen:
            slot.counters.inbox_dropped += 1
        arrival = time.monotonic() if arrival is None else arrival
        slot.last_packet_s = arrival
        slot.inbox.append((seq, timestamp, payload, arrival))

    def set_position(self, index: int, x: float, y: float) -> None:
        """Move a participant on the stage (metres, already validated)."""

        def command() -> None:
            self.positions[index] = (x, y)
            self._geometry_dirty = True

        self.post(command)

    def set_orientation(self, index: int, yaw_deg: float, pitch_deg: float) -> None:
        """Turn a listener's head (degrees, already validated)."""

        def command() -> None:
            self.orientations[index] = (yaw_deg, pitch_deg)
            self._geometry_dirty = True

        self.post(command)

    def set_modes(self, index: int, binaural: bool, room: bool) -> None:
        """Binaural rendering and the room, on or off in one listener's mix."""

        def command() -> None:
            self.binaural[index] = binaural
            self.room_on[index] = room
            self._modes_dirty = True

        self.post(command)

    def set_room(self, room: Room | None) -> None:
        """The session's room, or None for a dry stage."""
        self.post(lambda: self.renderer.set_room(room))

    def set_gain(self, listener: int, source: int, gain: float) -> None:
        """Set how loud ``source`` is in ``listener``'s own mix (0 mutes)."""

        def command() -> None:
            self.user_gain[listener, source] = gain
            self._weights_dirty = True

        self.post(command)

    def set_input_gain(self, source: int, gain: float) -> None:
        """Set a musician's input gain: how loud they are in every mix (and recorded mix)."""

        def command() -> None:
            self.input_gain[source] = gain
            self._weights_dirty = True

        self.post(command)

    def set_self_monitor(self, index: int, on: bool) -> None:
        """Whether a participant hears themself."""

        def command() -> None:
            self.self_monitor[index] = on
            self._weights_dirty = True

        self.post(command)

    def set_click(self, index: int, on: bool) -> None:
        """Whether a participant hears the metronome click."""

        def command() -> None:
            self.click_on[index] = on
            self._weights_dirty = True

        self.post(command)

    def set_tempo(self, tempo_bpm: float, beats_per_bar: int) -> None:
        """Change the beat grid from the next tick on."""
        self.post(lambda: self.metronome.set_tempo(tempo_bpm, beats_per_bar, self.sample))

    # ------------------------------------------------------ the mix thread
    def _reset_slot(self, index: int) -> None:
        self.user_gain[index, :] = 1.0
        self.user_gain[:, index] = 1.0
        self.input_gain[index] = 1.0
        self.self_monitor[index] = False
        self.click_on[index] = False
        self.positions[index] = (0.0, 0.0)
        self.orientations[index] = (0.0, 0.0)
        self.binaural[index] = self._binaural_default
        self.room_on[index] = True
        self._modes_dirty = True
        self.sources[index].fill(0.0)
        self._last[index].fill(0.0)
        self.levels[index] = 0.0
        slot = self.slots[index]
        if slot is not None:
            slot.carried = 0
        self._geometry_dirty = True
        self._weights_dirty = True

    def _update_weights(self) -> None:
        cap = self.capacity
        present = np.array([s is not None for s in self.slots] + [False], dtype=np.float32)
        present *= self.input_gain
        np.multiply(self.user_gain, present[None, :], out=self.weights)
        self.weights[np.arange(cap), np.arange(cap)] *= self.self_monitor
        self.weights[:, cap] = self.click_on * CLICK_GAIN
        self.weights[cap, cap] = 0.0  # recordings carry no click
        self._weights_dirty = False

    def tick(self, now: float | None = None) -> TickReport:
        """Mix one frame for every listener at monotonic time ``now``. Never raises."""
        started = time.perf_counter()
        now = time.monotonic() if now is None else now
        beat: int | None = None
        try:
            while self._commands:
                self._commands.popleft()()
            if not any(self.slots):
                # An empty session costs nothing but keeps its beat grid running.
                beat = self.metronome.beat_in(self.sample, self.frame_samples)
                self.sample += self.frame_samples
                self.ticks += 1
                return TickReport(self.sample, beat, time.perf_counter() - started)
            self._staged = 0
            for index, slot in enumerate(self.slots):
                if slot is None:
                    continue
                if slot.local is not None:
                    slot.local.fill(self.sample, self.sources[index])
                    continue
                self._pull_source(index, slot, now)
            if self._staged:
                self._decode_staged()
            beat = self.metronome.render(self.sample, self.sources[self.capacity])
            if self._modes_dirty:
                self.renderer.set_modes(self.binaural, self.room_on, self._distance)
                self._modes_dirty = False
            if self._geometry_dirty:
                self.renderer.set_geometry(self.positions, self.orientations)
                self._geometry_dirty = False
            if self._weights_dirty:
                self._update_weights()
            self.renderer.render(self.weights, self.sources, self.out_left, self.out_right)
            # Hard limiter at full scale, then interleaved s16 for the encoders.
            np.clip(self.out_left, -1.0, 1.0, out=self.out_left)
            np.clip(self.out_right, -1.0, 1.0, out=self.out_right)
            np.multiply(self.out_left, 32767.0, out=self.out_pcm[:, :, 0], casting="unsafe")
            np.multiply(self.out_right, 32767.0, out=self.out_pcm[:, :, 1], casting="unsafe")
            np.einsum("ij,ij->i", self.sources, self.sources, out=self._energy)
            self._account()
            if self.recording_sink is not None:
                self.recording_sink.capture(self)
        except Exception:  # the tick never raises: count, log once in a while, go on
            self.tick_errors += 1
            if self.tick_errors < 10 or self.tick_errors % 1000 == 0:
                log.exception("mix tick failed (%d so far)", self.tick_errors)
        self.sample += self.frame_samples
        self.ticks += 1
        return TickReport(self.sample, beat, time.perf_counter() - started)

    def skip(self, frames: int) -> None:
        """The clock skipped ``frames`` ticks (it fell too far behind): the session's time
        moves on anyway, so the beat grid stays on the wall clock and a recording keeps its
        length (the gap is written as silence). Called on the mix thread."""
        if frames <= 0:
            return
        self.sample += frames * self.frame_samples
        self.ticks += frames
        self.skipped += frames
        if self.recording_sink is not None:
            try:
                self.recording_sink.gap(frames)
            except Exception:  # the clock never raises
                self.tick_errors += 1

    def _pull_source(self, index: int, slot: Slot, now: float) -> None:
        inbox = slot.inbox
        samples_of = getattr(slot.decoder, "samples_of", None)
        while inbox:
            seq, timestamp, data, arrival = inbox.popleft()
            if samples_of is not None:
                self._follow_packet_size(slot, samples_of(data))
            slot.jitter.add(seq, timestamp, data, arrival)
        slot.played_arrival_s = 0.0
        if slot.jitter.frame_samples != self.frame_samples:
            self._pull_uneven(index, slot, now)
            return
        kind, payload = slot.jitter.pop(now)
        if kind == PopKind.HOLD:
            kind = PopKind.CONCEAL
        handle: int = getattr(slot.decoder, "batch_handle", 0)
        if handle:  # staged here, decoded with every other Opus source of the tick at once
            if kind == PopKind.PLAY and payload is not None:
                size = len(payload)
                if 0 < size <= MAX_PAYLOAD:
                    self._payload_rows[index][:size] = payload
                    self._stage(index, handle, size)
                    return
                slot.counters.decode_errors += 1
                kind = PopKind.CONCEAL
            if kind == PopKind.CONCEAL and slot.concealing < self._codec_conceal:
                self._stage(index, handle, 0)
                return
        if kind == PopKind.PLAY and payload is not None:
            try:
                decoded = slot.decoder.decode(payload, self.sources[index])
            except Exception:  # one bad stream must not silence the session
                decoded = False
            if decoded:
                self._played(index, slot)
                return
            slot.counters.decode_errors += 1
            kind = PopKind.CONCEAL
        if kind == PopKind.CONCEAL:
            self._conceal(index, slot, codec=True)
        else:
            self.sources[index].fill(0.0)

    def _follow_packet_size(self, slot: Slot, samples: int) -> None:
        """The stream's packets are not as long as its jitter buffer counts: start a buffer
        of the right unit, at once for a stream's first packet, else once three in a row
        agree (one corrupt packet must not reset a stream)."""
        if samples == slot.jitter.frame_samples or not 0 < samples <= MAX_PACKET_SAMPLES:
            slot.resize_votes = 0
            return
        if slot.jitter.stats.received:
            slot.resize_votes = slot.resize_votes + 1 if slot.resize_to == samples else 1
            slot.resize_to = samples
            if slot.resize_votes < RESIZE_AFTER:
                return
        stats = slot.jitter.stats
        slot.jitter = self._jitter(samples)
        slot.jitter.stats = stats  # the counters carry on
        slot.carried = 0
        slot.resize_votes = 0
        slot.counters.packet_resizes += 1

    def _pull_uneven(self, index: int, slot: Slot, now: float) -> None:
        """A stream whose packets are longer or shorter than the session's frames: decode
        whole packets one by one and carry what this tick does not play over to the next."""
        jitter = slot.jitter
        if slot.carry is None:
            slot.carry = np.zeros(MAX_PACKET_SAMPLES + self.frame_samples, dtype=np.float32)
        carry, row, need = slot.carry, self.sources[index], self.frame_samples
        filled = min(slot.carried, need)
        row[:filled] = carry[:filled]
        carry[: slot.carried - filled] = carry[filled : slot.carried]
        slot.carried -= filled
        played = concealed = False
        # Shorter packets than frames: the frame can only go out once its last packet is
        # here, so its packets are asked for a frame-minus-a-packet behind the tick (and the
        # clock aims its phase at that: ``uneven_lead_s``).
        lead = self.uneven_lead_s(slot)
        while filled < need:
            # A packet that starts later in this frame is due that much later.
            kind, payload = jitter.pop(now - lead + filled / self.sample_rate)
            if kind == PopKind.SILENT:
                row[filled:].fill(0.0)
                break
            length = jitter.frame_samples if kind != PopKind.HOLD else need - filled
            out = carry[slot.carried : slot.carried + length]
            ok = False
            if kind == PopKind.PLAY and payload is not None:
                try:
                    ok = bool(slot.decoder.decode(payload, out))
                except Exception:
                    ok = False
                if not ok:
                    slot.counters.decode_errors += 1
            if ok:
                played = True
                slot.played_arrival_s = jitter.last_arrival_s
            else:
                concealed = True
                self._conceal_samples(slot, out)
            take = min(length, need - filled)
            row[filled : filled + take] = out[:take]
            carry[: length - take] = out[take:]
            slot.carried = length - take
            filled += take
        if played and not concealed:
            if slot.concealing:
                n = self._fade_in.shape[0]
                row[:n] *= self._fade_in
            slot.concealing = 0
        elif concealed:
            slot.concealing += 1
        self._last[index] = row

    def uneven_lead_s(self, slot: Slot) -> float:
        """How far behind the tick a stream of packets shorter than the frame is scheduled."""
        return max(0, self.frame_samples - slot.jitter.frame_samples) / self.sample_rate

    def _conceal_samples(self, slot: Slot, out: F32) -> None:
        """Fill ``out`` for a missing stretch: the codec's own concealment while it lasts."""
        conceal = getattr(slot.decoder, "conceal", None)
        if conceal is not None and slot.concealing < self._codec_conceal:
            with contextlib.suppress(Exception):  # a broken decoder conceals with silence
                if conceal(out):
                    return
        out.fill(0.0)

    def _stage(self, index: int, handle: int, size: int) -> None:
        k = self._staged
        self._stage_handles[k] = handle
        self._stage_rows[k] = index
        self._payload_len[index] = size
        self._staged = k + 1

    def _decode_staged(self) -> None:
        """Decode (or conceal with Opus's PLC) every staged source in one GIL-free call."""
        count, self._staged = self._staged, 0
        self.workers.run(
            batch.decode_rows, count, self._stage_handles, self._stage_rows,
            self._payload, self._payload_len, self.sources, self._stage_results,
        )  # fmt: skip
        frame = self.frame_samples
        for k in range(count):
            index = int(self._stage_rows[k])
            slot = self.slots[index]
            if slot is None:
                continue
            samples = int(self._stage_results[k])
            if samples > 0 and samples < frame:
                self.sources[index, samples:] = 0.0
            if self._payload_len[index]:  # a real frame
                if samples > 0:
                    self._played(index, slot)
                else:
                    slot.counters.decode_errors += 1
                    self._conceal(index, slot, codec=True)
            elif samples > 0:
                slot.concealing += 1
            else:
                self._conceal(index, slot, codec=False)

    def _played(self, index: int, slot: Slot) -> None:
        """A frame was decoded into the source row."""
        row = self.sources[index]
        slot.played_arrival_s = slot.jitter.last_arrival_s
        if slot.concealing:
            # Fade the real signal back in over the first 2 ms.
            n = self._fade_in.shape[0]
            row[:n] *= self._fade_in
            slot.concealing = 0
        self._last[index] = row

    def _conceal(self, index: int, slot: Slot, codec: bool) -> None:
        """Fill a missing frame: the codec's own concealment while it lasts, then a decay."""
        row = self.sources[index]
        conceal = getattr(slot.decoder, "conceal", None) if codec else None
        if conceal is not None and slot.concealing < self._codec_conceal:
            try:
                concealed = bool(conceal(row))
            except Exception:
                concealed = False
            if concealed:  # the codec's own packet-loss concealment (Opus PLC)
                slot.concealing += 1
                return
        # Mirror the last frame (continuous at the joint) and let it decay.
        np.multiply(self._last[index, ::-1], self._ramp, out=row)
        row *= self._conceal_decay**slot.concealing
        self._last[index] = row
        slot.concealing += 1

    def _account(self) -> None:
        n = self.frame_samples
        for index, slot in enumerate(self.slots):
            if slot is None:
                continue
            mean_square = float(self._energy[index]) / n
            rms = math.sqrt(mean_square)
            self.levels[index] = rms
            counters = slot.counters
            counters.frames += 1
            counters.energy += mean_square
            if rms > ACTIVE_RMS:
                counters.active_frames += 1
