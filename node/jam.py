"""The jam service: sessions, admission, their mixers, peers, recordings and events.

This is the asyncio side of a session. It validates and applies what the API asks and keeps
SQLite in step. What it delegates, one job each:
- facts go out as typed events on one bus (``node.session.events``): event sockets and the
  p2p bridge subscribe to it;
- each session's WebRTC connections are kept by ``node.media.peers`` (connect, replace, fail,
  close) and who is still there is decided by ``node.session.presence`` (no ghosts);
- recordings and their contribution figures by ``node.recordings``;
- admission is one check (``_admit``), whoever is joining: a local musician, one bridged from
  another node, or the bandmate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.config import NodeConfig
from node.errors import NotFoundError, RateLimitError, SessionError
from node.heap import HeapKeeper
from node.identity import check_invite
from node.media.codec import OpusEncoder, OpusFrameDecoder, PcmFrameDecoder
from node.media.datachannel import ChannelTrack
from node.media.engine import Listener, MixClocks, SessionMedia
from node.media.outbound import PacketTrack
from node.media.peer import Peer
from node.media.peers import SessionPeers
from node.recordings import Recordings
from node.session.events import (
    Beat,
    Chatted,
    Closed,
    Event,
    EventBus,
    Joined,
    Left,
    Levels,
    Moved,
    PresenceChanged,
    RecordingChanged,
    SessionChanged,
    Subscription,
    Turned,
)
from node.session.lifetime import Expiry, Lifetime
from node.session.mixer import FrameDecoder, LocalSource, SessionMixer, TickReport
from node.session.presence import Liveness, Presence, Transition
from node.session.render import Renderer, StereoPanner
from node.session.session import Participant, Session, SessionSettings
from node.spatial.bank import HrtfBank, load_bank
from node.spatial.renderer import BinauralRenderer
from node.spatial.room import Room
from node.store.db import Store

log = logging.getLogger(__name__)

REPLACED = "replaced: the same key joined this session again from another client"
"""Why a participant's first connection ends when their key joins again. The newer join wins
(a reloaded page, a restarted CLI must get back in at once, not wait out a timeout); the
older client is told this and stops (the CLI exits with it)."""
LOCAL_ADDRESS = "node:bandmate"
"""The address a node-made participant shows (it signs nothing and is owed nothing)."""
LEVELS_EVERY_S = 0.1
STATS_EVERY_S = 1.0
PRESENCE_EVERY_S = 0.25


class Federation(Protocol):
    """What the jam service asks of the p2p layer (the facts it learns from the event bus)."""

    async def mirror(self, session_id: str) -> None: ...
    def forward(self, session_id: str, participant: Participant, seq: int, ts: int,
                payload: bytes) -> None: ...  # fmt: skip


class _NoDecoder:
    """A local source has no packets to decode."""

    def decode(self, payload: bytes, out: Any) -> bool:
        return False


@dataclass
class _Live:
    """Runtime state that goes with a session."""

    session: Session
    media: SessionMedia
    peers: SessionPeers
    presence: Presence
    lifetime: Lifetime
    rtt_ms: dict[str, float] = field(default_factory=dict)
    """Each local participant's network round trip, from RTCP (refreshed every second)."""
    client: str = ""
    """The client address that created the session (its per-address limit)."""


class JamService:
    """Owns every session on this node."""

    def __init__(self, config: NodeConfig, store: Store, clocks: MixClocks) -> None:
        self.config = config
        self.store = store
        self.clocks = clocks
        self.events = EventBus()
        """Every session's facts (``node.session.events``)."""
        self._live: dict[str, _Live] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.banks: dict[int, HrtfBank] = {}
        """The HRTF set every session renders with, prepared per frame size (``start``)."""
        self.recordings = Recordings(config, store)
        self.federation: Federation | None = None
        """Set by the p2p service: bridges sessions to other nodes."""
        self.heap = HeapKeeper()
        """Keeps the collector's full passes out of live sessions (``node.heap``)."""

    @property
    def bank(self) -> HrtfBank | None:
        """The HRTF set prepared for 20 ms frames (None before ``start``)."""
        return self.banks.get(960)

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Load the HRTF set, recover recordings, restore open sessions, start periodic work."""
        spatial = self.config.spatial
        rate = self.config.media.sample_rate_hz
        for frame_ms in (20, 10, 5):
            block = rate * frame_ms // 1000
            self.banks[block] = await asyncio.to_thread(
                load_bank, spatial.sofa_file, spatial.hrir_taps, block
            )
        bank = self.banks[960]
        log.info("HRTF set %s: %d-point FFTs at 20 ms", bank.name, bank.fft_size)
        self.recordings.recover()
        for row in self.store.open_sessions():
            beats, unit = (int(v) for v in row["time_signature"].split("/"))
            settings = SessionSettings(
                row["name"],
                row["tempo_bpm"],
                row["key"],
                (beats, unit),
                bool(row["private"]),
                tuple((row.get("chords") or "").split()),
                int(row.get("frame_ms") or 20),
            )
            live = self._open(row["id"], row["owner"], settings, row["created_at"])
            if row.get("room"):
                try:
                    self._set_room(live, Room.parse(json.loads(row["room"])))
                except (ValueError, TypeError) as exc:
                    log.warning("session %s: stored room ignored (%s)", row["id"], exc)
        for name, loop in (
            ("levels", self._levels_loop),
            ("recording-stats", self._stats_loop),
            ("presence", self._presence_loop),
            ("seal-recordings", self.recordings.seal_missing),
        ):
            self._tasks.append(asyncio.create_task(loop(), name=name))

    async def stop(self) -> None:
        """Stop recordings cleanly, close peers and event streams (idempotent)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for session_id, live in list(self._live.items()):
            self.recordings.stop_if_recording(live.session, live.media.mixer)
            await live.peers.close_all()
            self.events.close_session(session_id, "node stopping")
        await self.recordings.drain()

    # --------------------------------------------------------------- sessions
    def _open(
        self, session_id: str, owner: str, settings: SessionSettings, created_at: float
    ) -> _Live:
        media_cfg = self.config.media
        limit = self.config.participant_limit(settings.frame_ms)
        mixer = SessionMixer(
            limit,
            tempo_bpm=settings.tempo_bpm,
            beats_per_bar=settings.time_signature[0],
            frame_samples=media_cfg.sample_rate_hz * settings.frame_ms // 1000,
            jitter_min_delay_s=media_cfg.jitter_min_delay_ms / 1000,
            jitter_max_delay_s=media_cfg.jitter_max_delay_ms / 1000,
            renderer_factory=self._renderer_for(settings.frame_ms),
            binaural=self.config.spatial.binaural,
        )
        session = Session(session_id, owner, settings, created_at, limit)
        cfg = self.config.session
        live = _Live(
            session,
            SessionMedia(mixer),
            SessionPeers(session_id, media_cfg.ice_servers, self._peer_state(session_id)),
            Presence(cfg.media_timeout_s, cfg.reconnect_grace_s, cfg.connect_timeout_s),
            Lifetime(cfg.empty_expiry_s, cfg.ownerless_expiry_s),
        )
        live.media.on_tick = lambda report, live=live: self._on_tick(live, report)
        self._live[session_id] = live
        self.clocks.add(session_id, live.media, settings.frame_ms)
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
            {k: public[k] for k in _MIRRORED if k in public}, default_frame_ms=20
        )
        live = self._open(public["id"], public["owner"], settings, public["created_at"])
        live.session.hosted_by = hosted_by
        return live.session

    def apply_settings(self, session_id: str, public: dict[str, Any]) -> None:
        """The hosting node changed a bridged session's settings: follow them."""
        live = self._get(session_id)
        current = live.session.settings
        parsed = SessionSettings.parse(
            {k: public[k] for k in _MIRRORED if k in public}, default_frame_ms=current.frame_ms
        )
        parsed.private = current.private
        parsed.frame_ms = current.frame_ms  # fixed for a session's life
        live.session.settings = parsed
        live.media.mixer.set_tempo(parsed.tempo_bpm, parsed.time_signature[0])
        self._publish(live, SessionChanged(live.session.public()))

    def drop_mirror(self, session_id: str) -> None:
        """Forget a bridged session (nobody here uses it any more, or its host closed it)."""
        live = self._live.pop(session_id, None)
        if live is None:
            return
        for participant in list(live.session.participants.values()):
            self._drop(live, participant, "the hosting node closed the session")
        self.clocks.remove(session_id)
        self._publish(live, Closed(hosted_here=False))
        self.events.close_session(session_id)

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

    def _renderer_for(self, frame_ms: int) -> Any:
        block = self.config.media.sample_rate_hz * frame_ms // 1000
        spatial = self.config.spatial

        def make(listeners: int, sources: int, centered: tuple[int, ...]) -> Renderer:
            bank = self.banks.get(block)
            if bank is None:  # only before start(): tests of the bare service
                return StereoPanner(listeners, sources, centered)
            return BinauralRenderer(
                bank,
                listeners,
                sources,
                centered,
                near_m=spatial.near_m,
                far_m=spatial.far_m,
                sample_rate=self.config.media.sample_rate_hz,
            )

        return make

    def _set_room(self, live: _Live, room: Room | None) -> None:
        live.session.room = room
        live.media.mixer.set_room(room)

    def create(self, owner: str, settings: SessionSettings, client: str = "") -> Session:
        """A new session owned by ``owner`` (already authenticated), asked for from ``client``
        (its network address): limits per node, per owner and per client address."""
        cfg = self.config.session
        if len(self._live) >= cfg.max_sessions:
            raise SessionError(
                f"this node hosts its maximum of {cfg.max_sessions} sessions; empty ones "
                f"close after {cfg.empty_expiry_s:g} s"
            )
        hosted = [live for live in self._live.values() if live.session.hosted_by is None]
        if sum(live.session.owner == owner for live in hosted) >= cfg.sessions_per_owner:
            raise RateLimitError(
                f"you own {cfg.sessions_per_owner} sessions on this node already: close one "
                "(empty ones close by themselves)"
            )
        if client and sum(live.client == client for live in hosted) >= cfg.sessions_per_client:
            raise RateLimitError(
                f"{cfg.sessions_per_client} sessions were opened from your address already: "
                "close one first"
            )
        live = self._open(secrets.token_hex(6), owner, settings, time.time())
        live.client = client
        self._persist(live.session)
        log.info(
            "session created",
            extra={"session": live.session.id, "frame_ms": settings.frame_ms},
        )
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
                "frame_ms": session.settings.frame_ms,
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

    def listeners(self, session_id: str) -> int:
        """How many of a session's participants get a personal mix now."""
        return len(self._get(session_id).media.listeners)

    def peer(self, session_id: str, participant_id: str) -> Peer | None:
        """A local participant's current peer connection (benchmarks, diagnostics)."""
        return self._get(session_id).peers.get(participant_id)

    async def close(self, session_id: str, reason: str = "the session was closed") -> None:
        """End a session: everyone is disconnected, recordings stop."""
        live = self._get(session_id)
        self._hosted_here(live)
        self.recordings.stop_if_recording(live.session, live.media.mixer)
        for participant in list(live.session.participants.values()):
            await self.leave(session_id, participant, reason)
        self.clocks.remove(session_id)
        self.store.close_session(session_id)
        self._publish(live, Closed())
        self.events.close_session(session_id)
        del self._live[session_id]
        log.info("session closed", extra={"session": session_id})

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
        self._publish(live, SessionChanged(live.session.public(), settings=True))
        return live.session

    # --------------------------------------------------------------- admission
    def _admit(
        self,
        live: _Live,
        address: str,
        name: str,
        decoder: FrameDecoder,
        local: LocalSource | None = None,
    ) -> Participant:
        """The one place anyone enters a session: its limit (set by its frame size), the
        owner's removals, and a slot in the mix."""
        session = live.session
        if len(session.participants) >= session.max_participants:
            raise SessionError(
                f"session is full: {session.max_participants} participants is what this node "
                f"holds in real time at {session.settings.frame_ms} ms frames"
            )
        participant = session.add(address, name, slot=-1)  # refuses removed addresses
        try:
            participant.slot = live.media.mixer.allocate(participant.id, decoder, local)
        except OverflowError:
            del session.participants[participant.id]
            raise SessionError("session is full") from None
        return participant

    def join(self, session_id: str, address: str, name: str, invite: object) -> Participant:
        """Admit an authenticated address; private sessions need the owner's invite."""
        live = self._get(session_id)
        session = live.session
        if session.settings.private and address != session.owner:
            check_invite(invite, session.id, session.owner, address)
        existing = session.by_address(address)
        if existing is not None:
            # Joining again (a reload) replaces the old connection; the old one is told.
            self._drop(live, existing, REPLACED)
        mixer = live.media.mixer
        decoder: PcmFrameDecoder | OpusFrameDecoder = (
            PcmFrameDecoder()
            if self.config.media.inbound == "aiortc"
            else OpusFrameDecoder(mixer.frame_samples)
        )
        participant = self._admit(live, address, name, decoder)
        live.presence.joined(participant.id, time.monotonic())
        self._publish(live, Joined(participant, participant.public()))
        log.info(
            "participant joined",
            extra={"session": session_id, "participant": participant.id, "address": address},
        )
        return participant

    def add_remote(self, session_id: str, address: str, name: str, via: str) -> Participant:
        """Admit a participant connected to another node (its audio comes over a bridge)."""
        live = self._get(session_id)
        participant = self._admit(
            live, address, name, OpusFrameDecoder(live.media.mixer.frame_samples)
        )
        participant.via = via
        participant.verified = False  # until they answer this node's challenge over the bridge
        participant.connected = True
        self._publish(live, Joined(participant, participant.public()))
        return participant

    def mark_verified(self, session_id: str, participant: Participant) -> None:
        """A bridged participant proved their address: tell the session."""
        live = self._live.get(session_id)
        if live is None or participant.verified:
            return
        participant.verified = True
        self._publish(live, PresenceChanged(participant, participant.public()))

    def add_local(self, session_id: str, name: str, source: LocalSource) -> Participant:
        """Admit a participant made on this node (the bandmate): its audio is ``source``."""
        live = self._get(session_id)
        participant = self._admit(live, LOCAL_ADDRESS, name, _NoDecoder(), source)
        participant.kind = "ai"
        participant.connected = True
        self._publish(live, Joined(participant, participant.public()))
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

    def mixer(self, session_id: str) -> SessionMixer:
        """A session's mixer."""
        return self._get(session_id).media.mixer

    def publish(self, session_id: str, event: Event) -> None:
        """Send an event to a session's subscribers."""
        self._publish(self._get(session_id), event)

    # ---------------------------------------------------------- peer lifecycle
    async def connect(
        self, session_id: str, participant: Participant, offer_sdp: str, transport: str = "rtp"
    ) -> str:
        """Open (or replace) the participant's WebRTC connection; returns the answer SDP.
        ``transport``: "rtp" (audio tracks) or "datachannel" (``node.media.datachannel``)."""
        live = self._get(session_id)
        media_cfg = self.config.media
        frame_ms = live.session.settings.frame_ms
        mixer = live.media.mixer
        slot = participant.slot
        live.media.listeners.pop(slot, None)
        track: PacketTrack | ChannelTrack = (
            ChannelTrack()
            if transport == "datachannel"
            else PacketTrack(media_cfg.outbound_queue_frames)
        )
        federation = self.federation

        def push(seq: int, ts: int, payload: bytes) -> None:
            mixer.push_packet(slot, seq, ts, payload)
            if federation is not None:
                federation.forward(session_id, participant, seq, ts, payload)

        _peer, answer = await live.peers.connect(
            participant.id,
            offer_sdp,
            push,
            track,
            media_cfg.uplink_bitrate_bps,
            frame_ms,
            stock=media_cfg.inbound == "aiortc" and transport == "rtp",
            transport=transport,
        )
        if participant.id not in live.session.participants:
            # They left (or were dropped) while the offer was being answered.
            await live.peers.close(participant.id)
            raise NotFoundError("you are no longer in this session; join again")
        live.media.listeners[slot] = Listener(
            track,
            OpusEncoder(
                2,
                media_cfg.downlink_bitrate_bps,
                media_cfg.opus_complexity,
                frame_ms,
                media_cfg.opus_application,
            ),
        )
        participant.connected = True
        participant.transport = transport
        live.presence.connected(participant.id, time.monotonic())
        self._publish(live, PresenceChanged(participant, participant.public()))
        log.info(
            "participant connected",
            extra={"session": session_id, "participant": participant.id, "transport": transport},
        )
        return answer

    def _peer_state(self, session_id: str) -> Any:
        def on_state(participant_id: str, _peer: Peer, state: str) -> None:
            live = self._live.get(session_id)
            if live is None or state not in {"failed", "closed"}:
                return
            change = live.presence.failed(participant_id, time.monotonic(), f"connection {state}")
            if change is not None:
                self._apply(live, change)

        return on_state

    def socket_closed(self, session_id: str, participant: Participant) -> None:
        """One of the participant's event sockets closed (their page may be gone)."""
        live = self._live.get(session_id)
        if live is None:
            return
        left = self.events.held_by(session_id, participant.id)
        live.presence.socket_closed(participant.id, time.monotonic(), left)

    def _apply(self, live: _Live, change: Transition) -> None:
        """Carry out what presence decided for one participant."""
        participant = live.session.participants.get(change.participant_id)
        if participant is None:
            live.presence.forget(change.participant_id)
            return
        extra = {
            "session": live.session.id,
            "participant": participant.id,
            "reason": change.reason,
        }
        if change.state == Liveness.GONE:
            log.info("participant gone", extra=extra)
            self._drop(live, participant, change.reason)
            return
        connected = change.state == Liveness.LIVE
        if participant.connected != connected:
            participant.connected = connected
            log.info("participant back" if connected else "participant lost", extra=extra)
            self._publish(live, PresenceChanged(participant, participant.public()))

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_EVERY_S)
            now = time.monotonic()
            for live in list(self._live.values()):
                try:
                    self._check_presence(live, now)
                    await self._check_lifetime(live, now)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one session's fault must not stop presence for all
                    log.exception("presence check failed", extra={"session": live.session.id})

    def _check_presence(self, live: _Live, now: float) -> None:
        mixer = live.media.mixer
        heard = {
            p.id: slot.last_packet_s
            for p in live.session.participants.values()
            if p.slot >= 0 and (slot := mixer.slots[p.slot]) is not None
        }
        for change in live.presence.check(now, heard):
            self._apply(live, change)

    async def _check_lifetime(self, live: _Live, now: float) -> None:
        """Close sessions nobody uses; stop the bandmate of one whose owner is gone."""
        session = live.session
        if session.hosted_by is not None or session.id not in self._live:
            return  # a mirror follows its host; the host decides
        humans = [p for p in session.participants.values() if p.kind != "ai"]
        owner_present = any(p.address == session.owner for p in humans)
        bandmates = [p for p in session.participants.values() if p.kind == "ai"]
        expiry = live.lifetime.check(now, len(humans), owner_present, bool(bandmates))
        if expiry is Expiry.CLOSE:
            idle = self.config.session.empty_expiry_s
            log.info("session expired", extra={"session": session.id, "empty_s": idle})
            await self.close(session.id, f"nobody was in it for {idle:g} s")
        elif expiry is Expiry.STOP_BANDMATE:
            log.info("bandmate stopped: owner gone", extra={"session": session.id})
            for participant in bandmates:
                self._drop(live, participant, "the owner left the session")
            session.bandmate = None
            self._publish(live, SessionChanged(session.public()))

    def _drop(self, live: _Live, participant: Participant, reason: str) -> None:
        if participant.id not in live.session.participants:
            return
        live.presence.forget(participant.id)
        live.rtt_ms.pop(participant.id, None)
        live.peers.close_soon(participant.id)
        live.media.listeners.pop(participant.slot, None)
        if participant.slot >= 0:
            self.recordings.save(live.session, live.media.mixer)
            live.media.mixer.release(participant.slot)
        live.session.participants.pop(participant.id, None)
        participant.connected = False
        self._publish(live, Left(participant, reason))
        self.events.close_participant(live.session.id, participant.id, reason)
        log.info(
            "participant left",
            extra={"session": live.session.id, "participant": participant.id, "reason": reason},
        )

    def drop(self, session_id: str, participant: Participant, reason: str = "link lost") -> None:
        """Take a participant out of a session now (a bridged one whose link went away)."""
        live = self._live.get(session_id)
        if live is not None:
            self._drop(live, participant, reason)

    async def leave(self, session_id: str, participant: Participant, reason: str = "left") -> None:
        """A participant leaves."""
        live = self._get(session_id)
        self._drop(live, participant, reason)
        await live.peers.close(participant.id)

    async def remove(self, session_id: str, target_id: str) -> None:
        """The owner removes someone; they cannot rejoin this session."""
        live = self._get(session_id)
        self._hosted_here(live)
        target = live.session.get(target_id)
        live.session.removed.add(target.address)
        await self.leave(session_id, target, "removed by the owner")

    # ------------------------------------------------------------------ pose, mix
    def move(self, session_id: str, participant: Participant, x: float, y: float) -> None:
        """Set a participant's stage position (validated)."""
        live = self._get(session_id)
        participant.x, participant.y = x, y
        live.media.mixer.set_position(participant.slot, x, y)
        self._publish(live, Moved(participant, x, y))

    def turn(
        self, session_id: str, participant: Participant, yaw_deg: float, pitch_deg: float
    ) -> None:
        """Set which way a participant faces (validated degrees)."""
        live = self._get(session_id)
        participant.yaw_deg, participant.pitch_deg = yaw_deg, pitch_deg
        live.media.mixer.set_orientation(participant.slot, yaw_deg, pitch_deg)
        self._publish(live, Turned(participant, yaw_deg, pitch_deg))

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

    def set_input_gain(self, session_id: str, participant: Participant, gain: float) -> None:
        """A musician's own input gain: how loud they are in every mix."""
        self._get(session_id).media.mixer.set_input_gain(participant.slot, gain)

    def set_monitor(self, session_id: str, participant: Participant, on: bool) -> None:
        """Self-monitoring on or off."""
        self._get(session_id).media.mixer.set_self_monitor(participant.slot, on)

    def set_click(self, session_id: str, participant: Participant, on: bool) -> None:
        """Metronome click in this participant's mix."""
        participant.click = on
        self._get(session_id).media.mixer.set_click(participant.slot, on)

    def chat(self, session_id: str, participant: Participant, text: str) -> None:
        """Broadcast a chat line."""
        self._publish(self._get(session_id), Chatted(participant, text, time.time()))

    # -------------------------------------------------------------- recording
    def start_recording(self, session_id: str) -> str:
        """Start recording stems and the mix; returns the recording id."""
        live = self._get(session_id)
        self._hosted_here(live)
        recording_id = self.recordings.start(live.session, live.media.mixer)
        self._publish(live, RecordingChanged(recording_id))
        return recording_id

    def stop_recording(self, session_id: str) -> dict[str, Any]:
        """Stop recording; returns the finished recording with contributions."""
        live = self._get(session_id)
        row = self.recordings.stop(live.session, live.media.mixer)
        self._publish(live, RecordingChanged(None))
        return row

    # ----------------------------------------------------------------- events
    def subscribe(self, session_id: str, participant_id: str | None = None) -> Subscription:
        """A bounded subscription to this session's events (its queue yields None: closed)."""
        self._get(session_id)
        return self.events.subscribe(session_id, participant_id)

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop receiving events."""
        self.events.unsubscribe(sub)

    def _publish(self, live: _Live, event: Event) -> None:
        self.events.publish(live.session.id, event)

    def _on_tick(self, live: _Live, report: TickReport) -> None:
        if report.beat is not None:
            beats = live.session.settings.time_signature[0]
            self._publish(live, Beat(report.beat, report.beat % beats))

    async def _levels_loop(self) -> None:
        while True:
            await asyncio.sleep(LEVELS_EVERY_S)
            for session_id, live in list(self._live.items()):
                if not self.events.subscribers(session_id):
                    continue
                mixer = live.media.mixer
                levels: dict[str, float] = {}
                jitter: dict[str, dict[str, Any]] = {}
                for p in live.session.participants.values():
                    slot = mixer.slots[p.slot] if p.slot >= 0 else None
                    if slot is None:
                        continue
                    levels[p.id] = round(float(mixer.levels[p.slot]), 4)
                    stats = slot.jitter.stats
                    jitter[p.id] = {
                        "target": slot.jitter.target,
                        "depth": slot.jitter.depth,
                        "delay_ms": round(slot.jitter.delay_s * 1000, 1),
                        "packet_ms": round(slot.jitter.frame_s * 1000, 1),
                        "concealed": stats.concealed,
                        "played": stats.played,
                        "node_added_ms": round(slot.node_added_ms, 1),
                        "rtt_ms": live.rtt_ms.get(p.id),
                    }
                self._publish(live, Levels(levels, jitter))

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            self.heap.observe(sum(len(live.session.participants) for live in self._live.values()))
            for live in list(self._live.values()):
                try:
                    self.recordings.save(live.session, live.media.mixer)
                except Exception:
                    log.exception("saving recording stats failed")
                await self._measure_rtt(live)

    async def _measure_rtt(self, live: _Live) -> None:
        """Each peer's round trip, as its receiver reports tell the node's sender."""
        for participant in list(live.session.participants.values()):
            peer = live.peers.get(participant.id)
            if peer is None:
                live.rtt_ms.pop(participant.id, None)
                continue
            rtt = await peer.rtt_ms()
            if rtt is not None:
                live.rtt_ms[participant.id] = round(rtt, 1)


_MIRRORED = ("name", "tempo_bpm", "key", "time_signature", "chords", "frame_ms")
"""The session settings a mirror takes from its host."""
