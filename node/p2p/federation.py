"""Sessions that span nodes: node-to-node WebRTC links, signalled over libp2p.

A musician on node A joins a session node B hosts. A opens a *mirror* of the session, asks B
over the ``/jamnet/bridge/1.0.0`` stream for a WebRTC link (offer in the request, answer
back). The connection has two parts:

- one sendrecv Opus audio section over which each participant's packets travel exactly as
  their client sent them, as SRTP with one SSRC per participant (their stream number) and
  their own sequence numbers and timestamps. Nothing is decoded or mixed on the way: the
  receiving node's own jitter buffer takes them like any client's packets (aiortc's receive
  buffer is bypassed by the same tap), and each node renders the personal mixes of its own
  listeners only — no double mixing, no second encode. Plain RTP, not a data channel: SCTP
  is congestion-controlled and ordered per message, so a loss or a busy moment queues audio
  behind it; RTP drops what is late and the jitter buffer conceals it.
- a reliable ``control`` data channel: who joins and leaves (with their stage pose), pose
  changes, chat and the host's session settings.

A bridged participant's address is the mirror's word until they prove it: the host sends a
fresh challenge over the link (``prove``: host peer id, session, address, nonce), the mirror
hands it to the musician's own client through its event socket, the client signs it
(EIP-191) with their key and posts it to their node, and the mirror relays the signature
(``proof``). Until it verifies, the host lists them unverified, and they are no contributor to
a recording: a mirror that forges an address is heard but cannot put anyone into a split.

A heartbeat (SSRC 0, every ``HEARTBEAT_S``) rides the audio path too: SCTP retransmits a
lost reliable message only after its RTO (at least 1 s in aiortc), which would read as a
dead link.

The host is the hub: what arrives from one mirror is relayed to the others. A link that is
silent for ``DEAD_AFTER_S`` is dead: the participants that came over it leave the mixes of
this node's listeners and the session goes on for everyone else; a mirror keeps dialling its
host while it has local participants, and announces them again when the host is back. A
mirror nobody here uses any more is closed after ``MIRROR_IDLE_S``.

Every control message and audio datagram is validated; bad ones are counted and dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from node.errors import InputError, JamnetError, NotFoundError, SessionError
from node.identity import parse_address, recover_signer
from node.inputs import participant_name
from node.inputs import session_id as session_id_of
from node.jam import JamService
from node.media.inbound import tap_receiver_streams
from node.media.peer import MAX_SDP_BYTES, ice_configuration, opus_payload_type
from node.session.events import (
    Chatted,
    Closed,
    Event,
    Joined,
    Left,
    Moved,
    ProofRequested,
    Refused,
    SessionChanged,
    Turned,
)
from node.session.session import (
    Participant,
    parse_chat,
    parse_orientation,
    parse_position,
)

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct(">BBHII")  # V=2 flags, marker/payload type, seq, timestamp, SSRC
MAX_AUDIO_BYTES = 1500
MAX_CONTROL_BYTES = 4096
HEARTBEAT_S = 0.25
DEAD_AFTER_S = 1.2
OPEN_TIMEOUT_S = 10.0
REDIAL_EVERY_S = 1.0
MIRROR_IDLE_S = 5.0
WATCH_EVERY_S = 0.1
PROOF_RESEND_S = 2.0
PROOF_TRIES = 30
"""A challenge is sent again every PROOF_RESEND_S until answered, at most this many times."""
PROOF_PREFIX = "jamnet bridge proof\n"


def proof_message(host_peer: str, session_id: str, address: str, nonce: str) -> str:
    """The text a bridged musician signs to prove ``address`` to the hosting node."""
    return (
        f"{PROOF_PREFIX}host: {host_peer}\nsession: {session_id}\naddress: {address}\n"
        f"nonce: {nonce}"
    )


Requester = Callable[[str, list[str], dict[str, Any]], Awaitable[dict[str, Any]]]
"""Sends one bridge request to a peer (peer id, its addrs, request) and returns the answer."""
Directory = Callable[[], list[dict[str, Any]]]
Addresses = Callable[[str], list[str]]


class Link:
    """One WebRTC connection between this node and another, for one session."""

    def __init__(self, session_id: str, peer_id: str, pc: RTCPeerConnection, hosting: bool):
        self.session_id = session_id
        self.peer_id = peer_id
        self.pc = pc
        self.hosting = hosting
        """True on the host's side of the link (the other node holds a mirror)."""
        self.control: RTCDataChannel | None = None
        self.transceiver: RTCRtpTransceiver | None = None
        self.payload_type = 111
        self._heartbeat_seq = 0
        self.answer_sdp = ""
        """The host's answer, kept between the request and applying it (mirror side)."""
        self.opened = asyncio.Event()
        self.out: dict[str, int] = {}
        """Participant id → stream number, for everyone this node announces over the link."""
        self.inbound: dict[int, Participant] = {}
        """Stream number → the participant it carries (admitted here with ``via``)."""
        self.relayed: set[int] = set()
        """Inbound streams the other node relays from a third (not its own musicians)."""
        self.proofs: dict[int, list[Any]] = {}
        """Host side: stream number → [challenge, last sent, tries] until the proof arrives."""
        self._next_stream = 1
        self.created = time.monotonic()
        self.last_heard = self.created
        self.last_sent = 0.0
        self.closed = False

    def stream_for(self, participant_id: str) -> int:
        """The stream number this participant goes under (assigned on first use)."""
        number = self.out.get(participant_id)
        if number is None:
            number = self._next_stream
            self._next_stream = self._next_stream % 0xFFFF + 1
            self.out[participant_id] = number
        return number

    def send_control(self, message: dict[str, Any]) -> None:
        """Send a control message if the channel is open (dropped otherwise: state is
        announced again whenever the link opens)."""
        channel = self.control
        if channel is None or channel.readyState != "open" or self.closed:
            return
        channel.send(json.dumps(message, separators=(",", ":")))

    def _send_rtp(self, ssrc: int, seq: int, ts: int, payload: bytes) -> bool:
        transceiver = self.transceiver
        if transceiver is None or self.closed or not self.opened.is_set():
            return False
        dtls = transceiver.sender.transport
        if dtls is None or dtls.state != "connected":
            return False
        header = RTP_HEADER.pack(0x80, self.payload_type, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        # aiortc's send path is a coroutine that never really waits (SRTP, then sendto).
        task = asyncio.get_running_loop().create_task(dtls._send_rtp(header + payload))
        task.add_done_callback(_ignore_result)
        return True

    def send_audio(self, participant_id: str, seq: int, ts: int, payload: bytes) -> bool:
        """Forward one packet of an announced participant; False when it cannot go."""
        number = self.out.get(participant_id)
        return number is not None and self._send_rtp(number, seq, ts, payload)

    def heartbeat(self) -> None:
        """Tell the other node this one is alive (a lost heartbeat costs nothing)."""
        self._heartbeat_seq += 1
        if self._send_rtp(0, self._heartbeat_seq, self._heartbeat_seq, b"\x00"):
            self.last_sent = time.monotonic()


class FederationService:
    """Bridges this node's sessions with other nodes (installed as ``JamService.federation``)."""

    def __init__(
        self,
        jam: JamService,
        ice_servers: tuple[str, ...],
        request: Requester,
        directory: Directory,
        addresses: Addresses,
        self_id: str,
    ) -> None:
        self.jam = jam
        self.ice_servers = ice_servers
        self._request = request
        self._directory = directory
        self._addresses = addresses
        self.self_id = self_id
        self.links: dict[str, dict[str, Link]] = {}
        """Session id → peer id → link."""
        self.stats: Counter[str] = Counter()
        self.lost: collections.deque[dict[str, Any]] = collections.deque(maxlen=32)
        """The latest dead links: peer, session, why, and how long it had been silent."""
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Session id → (lock, callers holding or awaiting it); gone when nobody is."""
        self._redials: dict[str, asyncio.Task[None]] = {}
        self._idle_since: dict[str, float] = {}
        self._watch: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Hook into the jam service and start the heartbeat/watchdog loop."""
        self.jam.federation = self
        self.jam.events.listen(self.on_event)
        self._watch = asyncio.create_task(self._watchdog(), name="federation-watchdog")

    async def stop(self) -> None:
        """Close every link and stop (idempotent)."""
        if self.jam.federation is self:
            self.jam.federation = None
        self.jam.events.unlisten(self.on_event)
        tasks = [t for t in (self._watch, *self._redials.values()) if t is not None]
        self._watch = None
        self._redials.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for links in list(self.links.values()):
            for link in list(links.values()):
                await self._close(link)
        self.links.clear()

    # ---------------------------------------------------------------- figures
    def summary(self) -> dict[str, Any]:
        """Links and counters for the API and /metrics."""
        return {
            "links": [
                {
                    "session": link.session_id,
                    "peer_id": link.peer_id,
                    "role": "host" if link.hosting else "mirror",
                    "open": link.opened.is_set(),
                    "streams_out": len(link.out),
                    "streams_in": len(link.inbound),
                    "heard_s_ago": round(time.monotonic() - link.last_heard, 2),
                }
                for links in self.links.values()
                for link in links.values()
            ],
            "counters": dict(self.stats),
            "lost": list(self.lost),
        }

    def shared_with(self, session_id: str) -> list[str]:
        """Peer ids of a session's open links, sorted (for the served-minutes meter)."""
        links = self.links.get(session_id, {})
        return sorted(peer for peer, link in links.items() if link.opened.is_set())

    def seen(self) -> list[tuple[str, str, list[Participant]]]:
        """(peer id, session id, that peer's own musicians here) for every open link: what
        this node countersigns a peer's shared minutes against."""
        return [
            (link.peer_id, link.session_id,
             [p for n, p in link.inbound.items() if n not in link.relayed])
            for links in self.links.values()
            for link in links.values()
            if link.opened.is_set() and not link.closed
        ]  # fmt: skip

    # ------------------------------------------------------------ mirror side
    async def mirror(self, session_id: str) -> None:
        """Bridge a session another node hosts, so local musicians can join it here."""
        async with self._mirror_lock(session_id):
            if self.jam.find(session_id) is not None:
                return
            entry = next((e for e in self._directory() if e["id"] == session_id), None)
            if entry is None:
                raise NotFoundError(f"no session {session_id!r} on this node or any node it knows")
            host = {"peer_id": entry["peer_id"], "node": entry["node"]}
            link, public = await self._dial(session_id, host["peer_id"])
            try:
                self.jam.open_mirror(public, host)
                await self._complete(link)
            except BaseException:
                await self._close(link)
                self.jam.drop_mirror(session_id)
                raise
            self._idle_since[session_id] = time.monotonic()
            log.info("session %s bridged from %s (%s)", session_id, host["node"], host["peer_id"])

    @contextlib.asynccontextmanager
    async def _mirror_lock(self, session_id: str) -> AsyncIterator[None]:
        """One bridging attempt per session at a time. The entry goes when its last caller
        does: ids nobody hosts (joins to made-up ids) leave nothing behind."""
        lock, users = self._locks.get(session_id, (asyncio.Lock(), 0))
        self._locks[session_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[session_id]
            if users <= 1:
                del self._locks[session_id]
            else:
                self._locks[session_id] = (lock, users - 1)

    async def _dial(self, session_id: str, peer_id: str) -> tuple[Link, dict[str, Any]]:
        """Offer a link to the host; returns it (answer not yet applied) and the session."""
        pc = RTCPeerConnection(ice_configuration(self.ice_servers))
        link = Link(session_id, peer_id, pc, hosting=False)
        self._wire(link, pc.createDataChannel("control"))
        self._tap(link, pc.addTransceiver("audio", direction="sendrecv"))
        try:
            await pc.setLocalDescription(await pc.createOffer())
            link.payload_type = opus_payload_type(pc.localDescription.sdp) or 111
            answer = await self._request(
                peer_id,
                self._addresses(peer_id),
                {"type": "bridge", "session": session_id, "sdp": pc.localDescription.sdp},
            )
        except BaseException as exc:
            await pc.close()
            if isinstance(exc, JamnetError | asyncio.CancelledError):
                raise
            raise SessionError(f"could not reach the node hosting {session_id}: {exc}") from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            await pc.close()
            reason = answer.get("error") if isinstance(answer, dict) else "no answer"
            raise SessionError(f"the hosting node refused the bridge: {reason}")
        public, sdp = answer.get("session"), answer.get("sdp")
        if not isinstance(public, dict) or public.get("id") != session_id or not _sdp_ok(sdp):
            await pc.close()
            raise SessionError("the hosting node's answer is malformed")
        link.answer_sdp = str(sdp)
        return link, public

    async def _complete(self, link: Link) -> None:
        """Apply the host's answer and wait for the channels to open."""
        await link.pc.setRemoteDescription(RTCSessionDescription(link.answer_sdp, "answer"))
        self.links.setdefault(link.session_id, {})[link.peer_id] = link
        try:
            await asyncio.wait_for(link.opened.wait(), OPEN_TIMEOUT_S)
        except TimeoutError:
            self.links.get(link.session_id, {}).pop(link.peer_id, None)
            raise SessionError("the link to the hosting node did not open") from None
        self.stats["links_opened"] += 1

    async def _redial(self, session_id: str, peer_id: str) -> None:
        """Keep trying to reach a mirror's host while the mirror has local participants."""
        try:
            while self.jam.find(session_id) is not None and self._locals(session_id):
                await asyncio.sleep(REDIAL_EVERY_S)
                if peer_id in self.links.get(session_id, {}):
                    return
                try:
                    link, _public = await self._dial(session_id, peer_id)
                    await self._complete(link)
                except (JamnetError, OSError) as exc:
                    self.stats["redial_failures"] += 1
                    log.debug("redialling %s for %s: %s", peer_id, session_id, exc)
                    continue
                log.info("session %s: link to its host %s is back", session_id, peer_id)
                return
        finally:
            self._redials.pop(session_id, None)

    def _locals(self, session_id: str) -> list[Participant]:
        session = self.jam.find(session_id)
        if session is None:
            return []
        return [p for p in session.participants.values() if not p.via]

    # -------------------------------------------------------------- host side
    async def accept(self, peer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Answer a bridge request from another node (runs on the node's loop)."""
        try:
            if request.get("type") != "bridge":
                raise InputError('request type must be "bridge"')
            session_id, sdp = session_id_of(request.get("session")), request.get("sdp")
            if not _sdp_ok(sdp):
                raise InputError("a bridge request needs a session id and an SDP offer")
            session = self.jam.get(session_id)
            if session.hosted_by is not None:
                raise SessionError("this node does not host that session")
            if session.settings.private:
                raise SessionError("private sessions are joined on the node that hosts them")
        except JamnetError as exc:
            self.stats["bridge_refused"] += 1
            return {"ok": False, "error": str(exc)}
        old = self.links.get(session_id, {}).get(peer_id)
        if old is not None:  # the other node restarted or redialled: the new link wins
            await self._lost(old, reason="replaced")
        pc = RTCPeerConnection(ice_configuration(self.ice_servers))
        link = Link(session_id, peer_id, pc, hosting=True)

        @pc.on("datachannel")
        def _channel(channel: RTCDataChannel) -> None:
            self._wire(link, channel)
            self._maybe_open(link)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(str(sdp), "offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if len(audio) != 1:
                raise InputError("a bridge offer has exactly one audio section")
            audio[0].direction = "sendrecv"
            self._tap(link, audio[0])
            link.payload_type = opus_payload_type(str(sdp)) or 111
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await pc.close()
            self.stats["bridge_refused"] += 1
            return {"ok": False, "error": f"could not answer the offer: {exc}"}
        self.links.setdefault(session_id, {})[peer_id] = link
        self.stats["links_accepted"] += 1
        return {"ok": True, "sdp": pc.localDescription.sdp, "session": session.public()}

    # ------------------------------------------------------------ both sides
    def _wire(self, link: Link, channel: RTCDataChannel) -> None:
        if channel.label != "control" or link.control is not None:
            self.stats["bad_channel"] += 1
            return
        link.control = channel
        channel.on("message", lambda m: self._on_control(link, m))
        channel.on("open", lambda: self._maybe_open(link))

    def _tap(self, link: Link, transceiver: RTCRtpTransceiver) -> None:
        link.transceiver = transceiver
        tap_receiver_streams(
            transceiver.receiver,
            lambda ssrc, seq, ts, payload: self._on_audio(link, ssrc, seq, ts, payload),
        )

    def _maybe_open(self, link: Link) -> None:
        ready = link.control is not None and link.control.readyState == "open"
        if ready and not link.opened.is_set():
            link.opened.set()
            link.last_heard = time.monotonic()
            self._announce_all(link)

    def _announce_all(self, link: Link) -> None:
        """Tell the other node about everyone here it should hear."""
        session = self.jam.find(link.session_id)
        if session is None:
            return
        for participant in list(session.participants.values()):
            if participant.via != link.peer_id and participant.kind != "ai":
                self._send_join(link, participant)

    def _send_join(self, link: Link, participant: Participant) -> None:
        link.send_control(
            {
                "t": "join",
                "s": link.stream_for(participant.id),
                "address": participant.address,
                "name": participant.name,
                "relayed": bool(participant.via),
                "x": participant.x,
                "y": participant.y,
                "yaw_deg": participant.yaw_deg,
                "pitch_deg": participant.pitch_deg,
            }
        )

    def _others(self, session_id: str, participant: Participant) -> list[Link]:
        links = self.links.get(session_id)
        if not links:
            return []
        return [k for k in links.values() if k.peer_id != participant.via and k.opened.is_set()]

    def on_event(self, session_id: str, event: Event) -> None:
        """The session's facts, from the jam service's event bus: pass on what links need."""
        if isinstance(event, Joined):
            self.on_join(session_id, event.participant)
        elif isinstance(event, Left):
            self.on_leave(session_id, event.participant)
        elif isinstance(event, Moved | Turned):
            self.on_pose(session_id, event.participant)
        elif isinstance(event, Chatted):
            self.on_chat(session_id, event.participant, event.text)
        elif isinstance(event, SessionChanged) and event.settings:
            self.on_settings(session_id)
        elif isinstance(event, Closed) and event.hosted_here:
            self.on_closed(session_id)

    def on_join(self, session_id: str, participant: Participant) -> None:
        """Someone joined here (or over another link): announce them."""
        if participant.kind == "ai":
            return  # the bandmate renders on its own node only (see the operator notes)
        self._idle_since.pop(session_id, None)
        for link in self._others(session_id, participant):
            self._send_join(link, participant)

    def relay_proof(self, session_id: str, participant: Participant, signature: object) -> int:
        """A musician of this node signed the host's challenge: pass it over their links."""
        if not isinstance(signature, str) or len(signature) > 200:
            raise InputError("signature must be 0x followed by 130 hex digits")
        sent = 0
        for link in self.links.get(session_id, {}).values():
            number = link.out.get(participant.id)
            if number is not None and not link.hosting:
                link.send_control({"t": "proof", "s": number, "signature": signature})
                sent += 1
        if not sent:
            raise SessionError("no hosting node is waiting for your proof")
        return sent

    def on_leave(self, session_id: str, participant: Participant) -> None:
        """Someone left here: tell the links that carried them."""
        for link in self.links.get(session_id, {}).values():
            number = link.out.pop(participant.id, None)
            if number is not None:
                link.send_control({"t": "leave", "s": number})
        if self.jam.is_mirror(session_id) and not self._locals(session_id):
            self._idle_since.setdefault(session_id, time.monotonic())

    def on_pose(self, session_id: str, participant: Participant) -> None:
        """A pose changed here: pass it on."""
        for link in self._others(session_id, participant):
            number = link.out.get(participant.id)
            if number is not None:
                link.send_control(
                    {
                        "t": "pose",
                        "s": number,
                        "x": participant.x,
                        "y": participant.y,
                        "yaw_deg": participant.yaw_deg,
                        "pitch_deg": participant.pitch_deg,
                    }
                )

    def on_chat(self, session_id: str, participant: Participant, text: str) -> None:
        """A chat line here: pass it on."""
        for link in self._others(session_id, participant):
            number = link.out.get(participant.id)
            if number is not None:
                link.send_control({"t": "chat", "s": number, "text": text})

    def on_settings(self, session_id: str) -> None:
        """The host changed the session's settings: mirrors follow."""
        public = self.jam.get(session_id).public()
        for link in self.links.get(session_id, {}).values():
            if link.hosting:
                link.send_control({"t": "session", "session": public})

    def on_closed(self, session_id: str) -> None:
        """The host closed the session: mirrors close theirs."""
        for link in list(self.links.get(session_id, {}).values()):
            link.send_control({"t": "closed"})
            asyncio.get_running_loop().create_task(self._close(link))
        self.links.pop(session_id, None)

    def forward(
        self, session_id: str, participant: Participant, seq: int, ts: int, payload: bytes
    ) -> None:
        """A packet of ``participant`` arrived here: send it over every other link."""
        links = self.links.get(session_id)
        if not links:
            return
        for link in links.values():
            if link.peer_id != participant.via and link.send_audio(
                participant.id, seq, ts, payload
            ):
                self.stats["audio_out"] += 1

    # ------------------------------------------------------------- inbound
    def _on_audio(self, link: Link, ssrc: int, seq: int, ts: int, payload: bytes) -> None:
        link.last_heard = time.monotonic()
        if ssrc == 0:
            return  # heartbeat
        if not 0 < len(payload) <= MAX_AUDIO_BYTES:
            self.stats["bad_audio"] += 1
            return
        participant = link.inbound.get(ssrc)
        if participant is None:
            self.stats["unknown_stream"] += 1
            return
        self.stats["audio_in"] += 1
        self.jam.push_remote(link.session_id, participant, seq, ts, payload)

    def _on_control(self, link: Link, message: object) -> None:
        link.last_heard = time.monotonic()
        try:
            if not isinstance(message, str) or len(message) > MAX_CONTROL_BYTES:
                raise InputError("control messages are JSON text of at most 4 KiB")
            body = json.loads(message)
            if not isinstance(body, dict):
                raise InputError("a control message is a JSON object")
            self._apply(link, body)
        except (JamnetError, ValueError, TypeError, KeyError) as exc:
            self.stats["bad_control"] += 1
            log.info("bad control message from %s: %s", link.peer_id, exc)

    def _apply(self, link: Link, body: dict[str, Any]) -> None:
        kind = body.get("t")
        session_id = link.session_id
        if kind == "session" and not link.hosting:
            public = body.get("session")
            if not isinstance(public, dict):
                raise InputError("session must be an object")
            self.jam.apply_settings(session_id, public)
            return
        if kind == "closed" and not link.hosting:
            self.links.get(session_id, {}).pop(link.peer_id, None)
            asyncio.get_running_loop().create_task(self._close(link))
            self.jam.drop_mirror(session_id)
            return
        number = body.get("s")
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number <= 0xFFFF:
            raise InputError("s must be a stream number")
        if kind == "join":
            self._join(link, number, body)
        elif kind == "prove" and not link.hosting:
            self._relay_challenge(link, number, body)
        else:
            self._stream_message(link, kind, number, body)

    def _join(self, link: Link, number: int, body: dict[str, Any]) -> None:
        """Another node announces a participant: admit them, unverified, and challenge them."""
        session_id = link.session_id
        if number in link.inbound:
            raise InputError(f"stream {number} is already announced")
        address = parse_address(body.get("address"))
        name = participant_name(body.get("name"))
        x, y = parse_position(body)
        yaw, pitch = parse_orientation(body, 0.0, 0.0)
        try:
            participant = self.jam.add_remote(session_id, address, name, link.peer_id)
        except JamnetError as exc:
            link.send_control({"t": "refused", "s": number, "error": str(exc)})
            self.stats["joins_refused"] += 1
            return
        link.inbound[number] = participant
        if body.get("relayed") is True:
            link.relayed.add(number)
        self.jam.move(session_id, participant, x, y)
        self.jam.turn(session_id, participant, yaw, pitch)
        challenge = proof_message(self.self_id, session_id, address, secrets.token_hex(16))
        link.proofs[number] = [challenge, time.monotonic(), 1]
        link.send_control({"t": "prove", "s": number, "message": challenge})

    def _relay_challenge(self, link: Link, number: int, body: dict[str, Any]) -> None:
        """The host challenges one of our musicians: hand it to their client."""
        session_id = link.session_id
        message = body.get("message")
        if (
            not isinstance(message, str)
            or not message.startswith(PROOF_PREFIX)
            or len(message) > 512
            or f"\nsession: {session_id}\n" not in message
        ):
            raise InputError("a proof challenge names this session")
        pid = next((p for p, n in link.out.items() if n == number), None)
        if pid is not None:
            self.jam.publish(session_id, ProofRequested(pid, message))

    def _stream_message(self, link: Link, kind: object, number: int, body: dict[str, Any]) -> None:
        session_id = link.session_id
        if kind == "refused":
            # The host would not admit one of ours (removed by the owner, or full): they leave.
            pid = next((p for p, n in link.out.items() if n == number), None)
            session = self.jam.find(session_id)
            if pid is not None and session is not None and pid in session.participants:
                error = str(body.get("error", ""))[:200]
                self.jam.publish(session_id, Refused(pid, error))
                self.jam.drop(session_id, session.participants[pid], f"refused: {error}")
            return
        sender = link.inbound.get(number)
        if sender is None:
            raise InputError(f"stream {number} was never announced")
        if kind == "proof" and link.hosting:
            pending = link.proofs.get(number)
            if pending is None:
                return  # proven already
            try:
                signer = recover_signer(pending[0], body.get("signature"))
            except JamnetError:
                signer = ""
            if signer != sender.address:
                self.stats["bad_proof"] += 1
                raise InputError(f"stream {number}'s proof is not signed by {sender.address}")
            del link.proofs[number]
            self.stats["proven"] += 1
            self.jam.mark_verified(session_id, sender)
            return
        if kind == "leave":
            del link.inbound[number]
            link.relayed.discard(number)
            link.proofs.pop(number, None)
            self.jam.drop(session_id, sender)
        elif kind == "pose":
            x, y = parse_position(body)
            yaw, pitch = parse_orientation(body, sender.yaw_deg, sender.pitch_deg)
            self.jam.move(session_id, sender, x, y)
            self.jam.turn(session_id, sender, yaw, pitch)
        elif kind == "chat":
            self.jam.chat(session_id, sender, parse_chat(body))
        else:
            raise InputError(f"unknown control message {kind!r}")

    # ----------------------------------------------------------- liveness
    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            for links in list(self.links.values()):
                for link in list(links.values()):
                    try:
                        self._check(link, now)
                    except Exception:
                        self.stats["watchdog_errors"] += 1
                        log.exception("checking link %s failed", link.peer_id)
            for session_id, since in list(self._idle_since.items()):
                if not self.jam.is_mirror(session_id) or self._locals(session_id):
                    self._idle_since.pop(session_id, None)
                elif now - since > MIRROR_IDLE_S:
                    self._idle_since.pop(session_id, None)
                    await self._retire(session_id)

    def _check(self, link: Link, now: float) -> None:
        if not link.opened.is_set():
            if now - link.created > OPEN_TIMEOUT_S:
                asyncio.get_running_loop().create_task(self._lost(link, reason="never opened"))
            return
        if link.pc.connectionState in ("failed", "closed"):
            asyncio.get_running_loop().create_task(self._lost(link, reason="connection failed"))
        elif now - link.last_heard > DEAD_AFTER_S:
            asyncio.get_running_loop().create_task(self._lost(link, reason="silent"))
        elif now - link.last_sent >= HEARTBEAT_S:
            link.heartbeat()
        for number, pending in list(link.proofs.items()):
            if now - pending[1] < PROOF_RESEND_S:
                continue
            if pending[2] >= PROOF_TRIES:
                del link.proofs[number]  # they stay unverified
                self.stats["unproven"] += 1
                continue
            pending[1], pending[2] = now, pending[2] + 1
            link.send_control({"t": "prove", "s": number, "message": pending[0]})

    async def _lost(self, link: Link, reason: str) -> None:
        """A link died: its participants leave this node's mixes; a mirror redials."""
        links = self.links.get(link.session_id, {})
        if links.get(link.peer_id) is not link:
            return
        del links[link.peer_id]
        self.stats["links_lost"] += 1
        silent = time.monotonic() - link.last_heard
        self.lost.append({"peer_id": link.peer_id, "session": link.session_id,
                          "reason": reason, "silent_s": round(silent, 3)})  # fmt: skip
        log.warning(
            "session %s: link to %s lost (%s); %d participants dropped here",
            link.session_id, link.peer_id, reason, len(link.inbound),
        )  # fmt: skip
        for participant in list(link.inbound.values()):
            if self.jam.find(link.session_id) is not None:
                self.jam.drop(link.session_id, participant)
        link.inbound.clear()
        await self._close(link)
        session_id = link.session_id
        if (
            not link.hosting
            and self.jam.is_mirror(session_id)
            and self._locals(session_id)
            and session_id not in self._redials
        ):
            self._redials[session_id] = asyncio.create_task(
                self._redial(session_id, link.peer_id), name=f"redial-{session_id}"
            )

    async def _retire(self, session_id: str) -> None:
        for link in list(self.links.pop(session_id, {}).values()):
            await self._close(link)
        self.jam.drop_mirror(session_id)
        log.info("session %s: bridge closed (nobody here uses it)", session_id)

    async def _close(self, link: Link) -> None:
        link.closed = True
        with contextlib.suppress(Exception):
            await link.pc.close()


def _sdp_ok(sdp: object) -> bool:
    return (
        isinstance(sdp, str)
        and sdp.startswith("v=0")
        and len(sdp.encode()) <= MAX_SDP_BYTES
        and "m=application" in sdp
        and opus_payload_type(sdp) is not None
    )


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # a send on a closing transport: the heartbeat watchdog handles it
