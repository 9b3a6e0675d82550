"""The jam service: sessions, their mixers, peers, recordings and event streams.

This is the asyncio side of a session. It validates and applies what the API asks, keeps
SQLite in step, and fans events out to each session's WebSocket subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from node.config import NodeConfig
from node.errors import NotFoundError, SessionError
from node.heap import HeapKeeper
from node.identity import check_invite
from node.media.codec import OpusEncoder, OpusFrameDecoder, PcmFrameDecoder, pump_decoded
from node.media.engine import Listener, MixClock, SessionMedia
from node.media.outbound import PacketTrack
from node.media.peer import Peer
from node.media.recorder import Recorder, recover
from node.session.mixer import LocalSource, SessionMixer, TickReport
from node.session.render import Renderer, StereoPanner
from node.session.session import Participant, Session, SessionSettings
from node.spatial.bank import HrtfBank, load_bank
from node.spatial.renderer import BinauralRenderer
from node.spatial.room import Room
from node.store.db import Store

log = logging.getLogger(__name__)

EVENT_QUEUE = 256
LOCAL_ADDRESS = "node:bandmate"
"""The address a node-made participant shows (it signs nothing and is owed nothing)."""


class Federation(Protocol):
    """What the node tells the p2p layer about sessions that span nodes (see node.p2p)."""

    async def mirror(self, session_id: str) -> None: ...
    def on_join(self, session_id: str, participant: Participant) -> None: ...
    def on_leave(self, session_id: str, participant: Participant) -> None: ...
    def on_pose(self, session_id: str, participant: Participant) -> None: ...
    def on_chat(self, session_id: str, participant: Participant, text: str) -> None: ...
    def on_settings(self, session_id: str) -> None: ...
    def on_closed(self, session_id: str) -> None: ...
    def forward(self, session_id: str, participant: Participant, seq: int, ts: int,
                payload: bytes) -> None: ...  # fmt: skip


class _NoDecoder:
    """A local source has no packets to decode."""

    def decode(self, payload: bytes, out: Any) -> bool:
        return False


LEVELS_EVERY_S = 0.1
STATS_EVERY_S = 1.0


@dataclass
class _Live:
    """Runtime state that goes with a session."""

    session: Session
    media: SessionMedia
    peers: dict[str, Peer] = field(default_factory=dict)
    subscribers: set[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=set)
    recorder: Recorder | None = None
    recording_base: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    pumps: dict[str, asyncio.Task[None]] = field(default_factory=dict)


class JamService:
    """Owns every session on this node."""

    def __init__(self, config: NodeConfig, store: Store, clock: MixClock) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self._live: dict[str, _Live] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.bank: HrtfBank | None = None
        """The HRTF set every session renders with (loaded by ``start``)."""
        self.recordings_dir = config.data_path / "recordings"
        self.federation: Federation | None = None
        """Set by the p2p service: bridges sessions to other nodes."""
        self.heap = HeapKeeper()
        """Keeps the collector's full passes out of live sessions (``node.heap``)."""

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Load the HRTF set, recover recordings, restore open sessions, start periodic work."""
        spatial = self.config.spatial
        self.bank = await asyncio.to_thread(load_bank, spatial.sofa_file, spatial.hrir_taps)
        log.info("HRTF set %s: %d-point FFTs", self.bank.name, self.bank.fft_size)
        for row in self.store.recordings(state="recording"):
            frames = recover(Path(row["path"]))
            self.store.finish_recording(row["id"], frames, state="recovered")
            log.warning("recovered interrupted recording %s (%d frames)", row["id"], frames)
        for row in self.store.open_sessions():
            beats, unit = (int(v) for v in row["time_signature"].split("/"))
            settings = SessionSettings(
                row["name"],
                row["tempo_bpm"],
                row["key"],
                (beats, unit),
                bool(row["private"]),
                tuple((row.get("chords") or "").split()),
            )
            live = self._open(row["id"], row["owner"], settings, row["created_at"])
            if row.get("room"):
                try:
                    self._set_room(live, Room.parse(json.loads(row["room"])))
                except (ValueError, TypeError) as exc:
                    log.warning("session %s: stored room ignored (%s)", row["id"], exc)
        self._tasks.append(asyncio.create_task(self._levels_loop(), name="levels"))
        self._tasks.append(asyncio.create_task(self._stats_loop(), name="recording-stats"))

    async def stop(self) -> None:
        """Stop recordings cleanly, close peers and event streams (idempotent)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for live in list(self._live.values()):
            if live.recorder is not None:
                self._stop_recording(live)
            for peer in list(live.peers.values()):
                await peer.close()
            live.peers.clear()
            for queue in live.subscribers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    # --------------------------------------------------------------- sessions
    def _open(
        self, session_id: str, owner: str, settings: SessionSettings, created_at: float
    ) -> _Live:
        media_cfg = self.config.media
        capacity = self.config.session.max_participants
        mixer = SessionMixer(
            capacity,
            tempo_bpm=settings.tempo_bpm,
            beats_per_bar=settings.time_signature[0],
            frame_samples=media_cfg.sample_rate_hz * media_cfg.tick_ms // 1000,
            jitter_min_delay_s=media_cfg.jitter_min_delay_ms / 1000,
            jitter_max_delay_s=media_cfg.jitter_max_delay_ms / 1000,
            renderer_factory=self._renderer,
            binaural=self.config.spatial.binaural,
        )
        session = Session(session_id, owner, settings, created_at, capacity)
        live = _Live(session, SessionMedia(mixer))
        live.media.on_tick = lambda report, live=live: self._on_tick(live, report)
        self._live[session_id] = live
        self.clock.add(session_id, live.media)
        return live

    async def ensure(self, session_id: str) -> None:
        """Make sure ``session_id`` is live here: hosted, or bridged from the node hosting it."""
        if session_id not in self._live and self.federation is not None:
            await self.federation.mirror(session_id)

    def open_mirror(self, public: dict[str, Any], hosted_by: dict[str, str]) -> Session:
        """Open the local side of a session another node hosts (not persisted: the host is)."""
        existing = self._live.get(public["id"])
        if existing is not None:
            return existing.session
        settings = SessionSettings.parse(
            {k: public[k] for k in ("name", "tempo_bpm", "key", "time_signature", "chords")}
        )
        live = self._open(public["id"], public["owner"], settings, public["created_at"])
        live.session.hosted_by = hosted_by
        return live.session

    def apply_settings(self, session_id: str, public: dict[str, Any]) -> None:
        """The hosting node changed a bridged session's settings: follow them."""
        live = self._get(session_id)
        parsed = SessionSettings.parse(
            {k: public[k] for k in ("name", "tempo_bpm", "key", "time_signature", "chords")}
        )
        parsed.private = live.session.settings.private
        live.session.settings = parsed
        live.media.mixer.set_tempo(parsed.tempo_bpm, parsed.time_signature[0])
        self._publish(live, {"type": "session", "session": live.session.public()})

    def drop_mirror(self, session_id: str) -> None:
        """Forget a bridged session (nobody here uses it any more, or its host closed it)."""
        live = self._live.pop(session_id, None)
        if live is None:
            return
        for participant in list(live.session.participants.values()):
            self._drop(live, participant)
        self.clock.remove(session_id)
        self._publish(live, {"type": "closed"})

    def find(self, session_id: str) -> Session | None:
        """A live session by id, or None."""
        live = self._live.get(session_id)
        return live.session if live is not None else None

    def is_mirror(self, session_id: str) -> bool:
        """True when another node hosts this session."""
        live = self._live.get(session_id)
        return live is not None and live.session.hosted_by is not None

    def _hosted_here(self, live: _Live) -> None:
        hosted_by = live.session.hosted_by
        if hosted_by is not None:
            raise SessionError(
                f"this session is hosted on {hosted_by['node']}: its owner does that there"
            )

    def add_remote(self, session_id: str, address: str, name: str, via: str) -> Participant:
        """Admit a participant connected to another node (its audio comes over a bridge)."""
        live = self._get(session_id)
        session = live.session
        participant = session.add(address, name, slot=-1)  # refuses removed addresses, full
        participant.via = via
        try:
            participant.slot = live.media.mixer.allocate(
                participant.id, OpusFrameDecoder(live.media.mixer.frame_samples)
            )
        except OverflowError:
            del session.participants[participant.id]
            raise SessionError("session is full") from None
        participant.connected = True
        self._publish(live, {"type": "joined", "participant": participant.public()})
        if self.federation is not None:
            self.federation.on_join(session_id, participant)
        return participant

    def push_remote(
        self, session_id: str, participant: Participant, seq: int, ts: int, payload: bytes
    ) -> None:
        """A bridged participant's audio packet: into this node's mix, on to other bridges."""
        live = self._live.get(session_id)
        if live is None or participant.slot < 0:
            return
        live.media.mixer.push_packet(participant.slot, seq, ts, payload)
        if self.federation is not None:
            self.federation.forward(session_id, participant, seq, ts, payload)

    def _renderer(self, listeners: int, sources: int, centered: tuple[int, ...]) -> Renderer:
        if self.bank is None:  # only before start(): tests of the bare service
            return StereoPanner(listeners, sources, centered)
        spatial = self.config.spatial
        return BinauralRenderer(
            self.bank,
            listeners,
            sources,
            centered,
            near_m=spatial.near_m,
            far_m=spatial.far_m,
            sample_rate=self.config.media.sample_rate_hz,
        )

    def _set_room(self, live: _Live, room: Room | None) -> None:
        live.session.room = room
        live.media.mixer.set_room(room)

    def create(self, owner: str, settings: SessionSettings) -> Session:
        """A new session owned by ``owner`` (already authenticated)."""
        if len(self._live) >= self.config.session.max_sessions:
            raise SessionError(
                f"this node hosts its maximum of {self.config.session.max_sessions} sessions"
            )
        live = self._open(secrets.token_hex(6), owner, settings, time.time())
        self._persist(live.session)
        return live.session

    def _persist(self, session: Session) -> None:
        beats, unit = session.settings.time_signature
        self.store.save_session(
            {
                "id": session.id,
                "owner": session.owner,
                "name": session.settings.name,
                "tempo_bpm": session.settings.tempo_bpm,
                "key": session.settings.key,
                "time_signature": f"{beats}/{unit}",
                "private": int(session.settings.private),
                "created_at": session.created_at,
                "room": json.dumps(session.room.settings()) if session.room else None,
                "chords": " ".join(session.settings.chords),
            }
        )

    def get(self, session_id: str) -> Session:
        """A session by id."""
        return self._get(session_id).session

    def _get(self, session_id: str) -> _Live:
        live = self._live.get(session_id)
        if live is None:
            raise NotFoundError(f"no session {session_id!r} on this node")
        return live

    def sessions(self) -> list[Session]:
        """All sessions, oldest first."""
        return sorted((live.session for live in self._live.values()), key=lambda s: s.created_at)

    def mixers(self) -> dict[str, SessionMixer]:
        """Each session's mixer (for metrics)."""
        return {key: live.media.mixer for key, live in self._live.items()}

    async def close(self, session_id: str) -> None:
        """End a session: everyone is disconnected, recordings stop."""
        live = self._get(session_id)
        self._hosted_here(live)
        if live.recorder is not None:
            self._stop_recording(live)
        for participant in list(live.session.participants.values()):
            await self.leave(session_id, participant)
        self.clock.remove(session_id)
        self.store.close_session(session_id)
        self._publish(live, {"type": "closed"})
        del self._live[session_id]
        if self.federation is not None:
            self.federation.on_closed(session_id)

    def update(
        self,
        session_id: str,
        tempo_bpm: float | None,
        time_signature: tuple[int, int] | None,
        key: str | None,
        room: Room | bool | None = False,
        chords: tuple[str, ...] | None = None,
    ) -> Session:
        """Owner changes tempo, metre, key, chords or room (``False``: leave the room as is)."""
        live = self._get(session_id)
        self._hosted_here(live)
        settings = live.session.settings
        if chords is not None:
            settings.chords = chords
        if tempo_bpm is not None:
            settings.tempo_bpm = tempo_bpm
        if time_signature is not None:
            settings.time_signature = time_signature
        if key is not None:
            settings.key = key
        if room is not False:
            self._set_room(live, room if isinstance(room, Room) else None)
        live.media.mixer.set_tempo(settings.tempo_bpm, settings.time_signature[0])
        self._persist(live.session)
        self._publish(live, {"type": "session", "session": live.session.public()})
        if self.federation is not None:
            self.federation.on_settings(session_id)
        return live.session

    # ----------------------------------------------------------- participants
    def join(self, session_id: str, address: str, name: str, invite: object) -> Participant:
        """Admit an authenticated address; private sessions need the owner's invite."""
        live = self._get(session_id)
        session = live.session
        if session.settings.private and address != session.owner:
            check_invite(invite, session.id, session.owner, address)
        existing = session.by_address(address)
        if existing is not None:
            # Joining again (a reload) replaces the old connection.
            self._drop(live, existing)
        mixer = live.media.mixer
        if len(session.participants) >= session.max_participants:
            raise SessionError(f"session is full ({session.max_participants} participants)")
        participant = session.add(address, name, slot=-1)
        try:
            decoder: PcmFrameDecoder | OpusFrameDecoder = (
                PcmFrameDecoder()
                if self.config.media.inbound == "aiortc"
                else OpusFrameDecoder(mixer.frame_samples)
            )
            participant.slot = mixer.allocate(participant.id, decoder)
        except OverflowError:
            del session.participants[participant.id]
            raise SessionError("session is full") from None
        self._publish(live, {"type": "joined", "participant": participant.public()})
        if self.federation is not None:
            self.federation.on_join(session_id, participant)
        return participant

    def add_local(self, session_id: str, name: str, source: LocalSource) -> Participant:
        """Admit a participant made on this node (the bandmate): its audio is ``source``."""
        live = self._get(session_id)
        session = live.session
        if len(session.participants) >= session.max_participants:
            raise SessionError(f"session is full ({session.max_participants} participants)")
        participant = session.add(LOCAL_ADDRESS, name, slot=-1)
        participant.kind = "ai"
        try:
            participant.slot = live.media.mixer.allocate(participant.id, _NoDecoder(), source)
        except OverflowError:
            del session.participants[participant.id]
            raise SessionError("session is full") from None
        participant.connected = True
        self._publish(live, {"type": "joined", "participant": participant.public()})
        return participant

    def mixer(self, session_id: str) -> SessionMixer:
        """A session's mixer."""
        return self._get(session_id).media.mixer

    def publish(self, session_id: str, event: dict[str, Any]) -> None:
        """Send an event to a session's subscribers."""
        self._publish(self._get(session_id), event)

    async def connect(self, session_id: str, participant: Participant, offer_sdp: str) -> str:
        """Open (or replace) the participant's WebRTC connection; returns the answer SDP."""
        live = self._get(session_id)
        old = live.peers.pop(participant.id, None)
        old_pump = live.pumps.pop(participant.id, None)
        if old_pump is not None:
            old_pump.cancel()
        if old is not None:
            live.media.listeners.pop(participant.slot, None)
            await old.close()
        media_cfg = self.config.media
        mixer = live.media.mixer
        slot = participant.slot
        track = PacketTrack(media_cfg.outbound_queue_frames)

        federation = self.federation

        def push(seq: int, ts: int, payload: bytes) -> None:
            mixer.push_packet(slot, seq, ts, payload)
            if federation is not None:
                federation.forward(session_id, participant, seq, ts, payload)

        stock = media_cfg.inbound == "aiortc"
        peer = Peer(media_cfg.ice_servers, None if stock else push, track)
        try:
            answer = await peer.answer(offer_sdp, media_cfg.uplink_bitrate_bps)
        except Exception:
            await peer.close()
            raise
        live.peers[participant.id] = peer
        if stock:
            live.pumps[participant.id] = asyncio.create_task(
                pump_decoded(peer.receiver.track, push)
            )
        live.media.listeners[slot] = Listener(
            track,
            OpusEncoder(
                2, media_cfg.downlink_bitrate_bps, media_cfg.opus_complexity, media_cfg.tick_ms
            ),
        )
        participant.connected = True
        self._publish(live, {"type": "participant", "participant": participant.public()})
        return answer

    def _drop(self, live: _Live, participant: Participant) -> None:
        pump = live.pumps.pop(participant.id, None)
        if pump is not None:
            pump.cancel()
        peer = live.peers.pop(participant.id, None)
        if peer is not None:
            task = asyncio.get_running_loop().create_task(peer.close())
            task.add_done_callback(lambda _t: None)
        live.media.listeners.pop(participant.slot, None)
        if participant.slot >= 0:
            live.media.mixer.release(participant.slot)
        if live.recorder is not None:
            self._save_stats(live)
        live.session.participants.pop(participant.id, None)
        self._publish(live, {"type": "left", "participant": participant.id})
        if self.federation is not None:
            self.federation.on_leave(live.session.id, participant)

    def drop(self, session_id: str, participant: Participant) -> None:
        """Take a participant out of a session now (a bridged one whose link went away)."""
        live = self._live.get(session_id)
        if live is not None and participant.id in live.session.participants:
            self._drop(live, participant)

    async def leave(self, session_id: str, participant: Participant) -> None:
        """A participant leaves."""
        live = self._get(session_id)
        peer = live.peers.pop(participant.id, None)
        self._drop(live, participant)
        if peer is not None:
            await peer.close()

    async def remove(self, session_id: str, target_id: str) -> None:
        """The owner removes someone; they cannot rejoin this session."""
        live = self._get(session_id)
        self._hosted_here(live)
        target = live.session.get(target_id)
        live.session.removed.add(target.address)
        await self.leave(session_id, target)

    def move(self, session_id: str, participant: Participant, x: float, y: float) -> None:
        """Set a participant's stage position (validated)."""
        live = self._get(session_id)
        participant.x, participant.y = x, y
        live.media.mixer.set_position(participant.slot, x, y)
        self._publish(live, {"type": "moved", "participant": participant.id, "x": x, "y": y})
        if self.federation is not None:
            self.federation.on_pose(session_id, participant)

    def turn(
        self, session_id: str, participant: Participant, yaw_deg: float, pitch_deg: float
    ) -> None:
        """Set which way a participant faces (validated degrees)."""
        live = self._get(session_id)
        participant.yaw_deg, participant.pitch_deg = yaw_deg, pitch_deg
        live.media.mixer.set_orientation(participant.slot, yaw_deg, pitch_deg)
        if self.federation is not None:
            self.federation.on_pose(session_id, participant)
        self._publish(
            live,
            {
                "type": "turned",
                "participant": participant.id,
                "yaw_deg": yaw_deg,
                "pitch_deg": pitch_deg,
            },
        )

    def set_render(
        self, session_id: str, participant: Participant, binaural: bool, room: bool
    ) -> None:
        """Binaural rendering and the room, on or off in this participant's own mix."""
        participant.binaural, participant.room = binaural, room
        self._get(session_id).media.mixer.set_modes(participant.slot, binaural, room)

    def set_mix(self, session_id: str, listener: Participant, source_id: str, gain: float) -> None:
        """Set a source's gain in the listener's own mix (0 mutes)."""
        live = self._get(session_id)
        source = live.session.get(source_id)
        live.media.mixer.set_gain(listener.slot, source.slot, gain)

    def set_monitor(self, session_id: str, participant: Participant, on: bool) -> None:
        """Self-monitoring on or off."""
        self._get(session_id).media.mixer.set_self_monitor(participant.slot, on)

    def set_click(self, session_id: str, participant: Participant, on: bool) -> None:
        """Metronome click in this participant's mix."""
        participant.click = on
        self._get(session_id).media.mixer.set_click(participant.slot, on)

    def chat(self, session_id: str, participant: Participant, text: str) -> None:
        """Broadcast a chat line."""
        self._publish(
            self._get(session_id),
            {
                "type": "chat",
                "from": participant.id,
                "name": participant.name,
                "text": text,
                "at": time.time(),
            },
        )
        if self.federation is not None:
            self.federation.on_chat(session_id, participant, text)

    # -------------------------------------------------------------- recording
    def start_recording(self, session_id: str) -> str:
        """Start recording stems and the mix; returns the recording id."""
        live = self._get(session_id)
        self._hosted_here(live)
        if live.recorder is not None:
            raise SessionError("this session is already recording")
        recording_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        directory = self.recordings_dir / session_id / recording_id
        recorder = Recorder(
            directory, self.config.media.sample_rate_hz, live.media.mixer.frame_samples
        )
        self.store.start_recording(recording_id, session_id, str(directory))
        live.recorder = recorder
        live.session.recording_id = recording_id
        mixer = live.media.mixer
        live.recording_base = {
            slot.key: (slot.counters.frames, slot.counters.active_frames, slot.counters.energy)
            for slot in mixer.slots
            if slot is not None
        }
        mixer.post(lambda: setattr(mixer, "recording_sink", recorder.capture))
        self._publish(live, {"type": "recording", "recording": recording_id})
        return recording_id

    def stop_recording(self, session_id: str) -> dict[str, Any]:
        """Stop recording; returns the finished recording with contributions."""
        live = self._get(session_id)
        if live.recorder is None:
            raise SessionError("this session is not recording")
        recording_id = self._stop_recording(live)
        self._publish(live, {"type": "recording", "recording": None})
        row = self.store.recording(recording_id)
        assert row is not None
        return row

    def _stop_recording(self, live: _Live) -> str:
        recorder = live.recorder
        recording_id = live.session.recording_id
        assert recorder is not None
        assert recording_id is not None
        mixer = live.media.mixer
        mixer.recording_sink = None  # the writer sees no frames after this tick
        self._save_stats(live)
        frames = recorder.stop()
        self.store.finish_recording(recording_id, frames)
        live.recorder = None
        live.session.recording_id = None
        return recording_id

    def _save_stats(self, live: _Live) -> None:
        recording_id = live.session.recording_id
        recorder = live.recorder
        if recording_id is None or recorder is None:
            return
        mixer = live.media.mixer
        frame_s = mixer.frame_samples / mixer.sample_rate
        rows = []
        for participant in live.session.participants.values():
            slot = mixer.slots[participant.slot] if participant.slot >= 0 else None
            if slot is None:
                continue
            # Someone who joined during the recording has a fresh slot: counters start at 0.
            base = live.recording_base.get(slot.key, (0, 0, 0.0))
            frames = slot.counters.frames - base[0]
            active = slot.counters.active_frames - base[1]
            energy = slot.counters.energy - base[2]
            rows.append(
                {
                    "address": participant.address,
                    "name": participant.name,
                    "active_s": round(active * frame_s, 3),
                    "rms": (energy / frames) ** 0.5 if frames else 0.0,
                    "frames": frames,
                    "stem": recorder.stem_name(slot.key),
                }
            )
        if rows:
            self.store.save_contributions(recording_id, rows)
        recorder.flush()

    # ----------------------------------------------------------------- events
    def subscribe(self, session_id: str) -> asyncio.Queue[dict[str, Any] | None]:
        """A bounded queue of this session's events (None means: closed)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(EVENT_QUEUE)
        self._get(session_id).subscribers.add(queue)
        return queue

    def unsubscribe(self, session_id: str, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop receiving events."""
        live = self._live.get(session_id)
        if live is not None:
            live.subscribers.discard(queue)

    def _publish(self, live: _Live, event: dict[str, Any]) -> None:
        for queue in list(live.subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A subscriber this far behind is dead or too slow: cut it off.
                live.subscribers.discard(queue)

    def _on_tick(self, live: _Live, report: TickReport) -> None:
        if report.beat is not None:
            beats = live.session.settings.time_signature[0]
            self._publish(
                live, {"type": "beat", "beat": report.beat, "bar_beat": report.beat % beats}
            )

    async def _levels_loop(self) -> None:
        while True:
            await asyncio.sleep(LEVELS_EVERY_S)
            for live in list(self._live.values()):
                if not live.subscribers:
                    continue
                mixer = live.media.mixer
                levels = {
                    p.id: round(float(mixer.levels[p.slot]), 4)
                    for p in live.session.participants.values()
                    if p.slot >= 0
                }
                jitter = {}
                for p in live.session.participants.values():
                    slot = mixer.slots[p.slot] if p.slot >= 0 else None
                    if slot is not None:
                        jitter[p.id] = {
                            "target": slot.jitter.target,
                            "depth": slot.jitter.depth,
                            "concealed": slot.jitter.stats.concealed,
                            "node_added_ms": round(slot.node_added_ms, 1),
                        }
                self._publish(live, {"type": "levels", "levels": levels, "jitter": jitter})

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            self.heap.observe(sum(len(live.session.participants) for live in self._live.values()))
            for live in list(self._live.values()):
                if live.recorder is not None:
                    try:
                        self._save_stats(live)
                    except Exception:
                        log.exception("saving recording stats failed")
