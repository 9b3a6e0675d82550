"""Sessions and participants: validated state, no I/O."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from node.config import FRAME_SIZES_MS
from node.errors import ForbiddenError, InputError, NotFoundError, SessionError
from node.inputs import SESSION_NAME_MAX, field_text, number
from node.session.render import STAGE_HALF_M
from node.spatial.room import Room

CHORD_RE = re.compile(
    r"^[A-G][#b]?(maj7|maj|min7|min|m7b5|m7|m6|m|dim7|dim|aug|M7|M|7|6|o7|o|\+|-)?$"
)
MAX_CHORDS = 64
KEY_RE = re.compile(r"^[A-G][#b]?(m| major| minor|maj|min)?$")
NAME_MAX = SESSION_NAME_MAX
CHAT_MAX = 500


def _number(
    body: dict[str, Any], key: str, lo: float, hi: float, default: float | None = None
) -> float:
    return number(body.get(key, default), key, lo, hi)


def parse_time_signature(value: object) -> tuple[int, int]:
    """'4/4' → (4, 4); beats 1-16, unit 2, 4, 8 or 16."""
    if not isinstance(value, str) or not re.match(r"^\d{1,2}/\d{1,2}$", value):
        raise InputError('time_signature must look like "4/4"')
    beats, unit = (int(part) for part in value.split("/"))
    if not 1 <= beats <= 16 or unit not in {2, 4, 8, 16}:
        raise InputError("time_signature needs 1-16 beats of a 2, 4, 8 or 16 note")
    return beats, unit


@dataclass
class SessionSettings:
    """What the owner chooses for a session."""

    name: str
    tempo_bpm: float = 120.0
    key: str = "C"
    time_signature: tuple[int, int] = (4, 4)
    private: bool = False
    chords: tuple[str, ...] = ()
    """The progression the bandmate plays over, one chord per bar (repeats)."""
    frame_ms: int = 20
    """Frame size, chosen at creation and fixed: 5, 10 or 20 ms (the mix clock's period, the
    Opus frames both ways, the jitter buffers' unit)."""

    @classmethod
    def parse(cls, body: dict[str, Any], default_frame_ms: int = 20) -> SessionSettings:
        """Validate a create request's fields."""
        key = body.get("key", "C")
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise InputError('key must be a note name with optional mode, e.g. "C", "F#m"')
        private = body.get("private", False)
        if not isinstance(private, bool):
            raise InputError("private must be true or false")
        return cls(
            name=field_text(body, "name", NAME_MAX),
            tempo_bpm=_number(body, "tempo_bpm", 20, 300, 120.0),
            key=key,
            time_signature=parse_time_signature(body.get("time_signature", "4/4")),
            private=private,
            chords=parse_chords(body.get("chords")),
            frame_ms=parse_frame_ms(body.get("frame_ms", default_frame_ms)),
        )


def parse_frame_ms(value: object) -> int:
    """A session's frame size: 5, 10 or 20 (milliseconds)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value not in FRAME_SIZES_MS:
        raise InputError("frame_ms must be 5, 10 or 20 (milliseconds per audio frame)")
    return int(value)


def parse_chords(value: object) -> tuple[str, ...]:
    """A progression, one chord per bar: "C G Am F" or ["C", "G", ...]; "" or null clears."""
    if value is None or value == "":
        return ()
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise InputError('chords must be a progression like "C G Am F" (one chord per bar)')
    if len(items) > MAX_CHORDS:
        raise InputError(f"chords: at most {MAX_CHORDS} (one per bar)")
    for item in items:
        if not CHORD_RE.match(item):
            raise InputError(f"chords: {item!r} is not a chord like C, F#m, Bb7, Edim, Aaug")
    return tuple(items)


def parse_position(body: dict[str, Any]) -> tuple[float, float]:
    """Stage coordinates in metres, each within ±10."""
    return (
        _number(body, "x", -STAGE_HALF_M, STAGE_HALF_M),
        _number(body, "y", -STAGE_HALF_M, STAGE_HALF_M),
    )


def parse_orientation(body: dict[str, Any], yaw: float, pitch: float) -> tuple[float, float]:
    """Optional ``yaw_deg`` (-180..360, wrapped to ±180) and ``pitch_deg`` (-90..90)."""
    if "yaw_deg" in body:
        yaw = _number(body, "yaw_deg", -360, 360)
        yaw = (yaw + 180.0) % 360.0 - 180.0
    if "pitch_deg" in body:
        pitch = _number(body, "pitch_deg", -90, 90)
    return yaw, pitch


def parse_chat(body: dict[str, Any]) -> str:
    """A chat line: 1-500 printable characters."""
    return field_text(body, "text", CHAT_MAX)


@dataclass
class Participant:
    """Someone in a session: an address with a slot in the mix."""

    id: str
    address: str
    name: str
    slot: int
    token: str
    joined_at: float
    x: float = 0.0
    y: float = 0.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    binaural: bool = True
    room: bool = True
    click: bool = False
    connected: bool = False
    kind: str = "human"
    """"human", or "ai" for the node's bandmate."""
    via: str = ""
    """The peer id of the node this participant is connected to, when it is not this one."""
    verified: bool = True
    """Whether this node has seen the address proven: by the sign-in signature here, or (for
    a bridged participant) by their answer to this node's challenge over the bridge. An
    unverified participant plays in the mix but is no contributor to a recording."""
    transport: str = ""
    """How their audio travels: "rtp", "datachannel", or "" before they connect."""

    def public(self) -> dict[str, Any]:
        """What everyone in the session may see."""
        return {
            "id": self.id,
            "address": self.address,
            "name": self.name,
            "x": self.x,
            "y": self.y,
            "yaw_deg": self.yaw_deg,
            "pitch_deg": self.pitch_deg,
            "connected": self.connected,
            "joined_at": self.joined_at,
            "kind": self.kind,
            "via": self.via or None,
            "verified": self.verified,
            "transport": self.transport or None,
        }


@dataclass
class Session:
    """A jam session hosted on this node."""

    id: str
    owner: str
    settings: SessionSettings
    created_at: float
    max_participants: int
    participants: dict[str, Participant] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    recording_id: str | None = None
    room: Room | None = None
    bandmate: dict[str, Any] | None = None
    """The AI bandmate's public state while one plays here."""
    hosted_by: dict[str, str] | None = None
    """For a session another node hosts and this one bridges: that node's peer id and URL."""

    def public(self) -> dict[str, Any]:
        """The directory entry / detail view."""
        beats, unit = self.settings.time_signature
        return {
            "id": self.id,
            "name": self.settings.name,
            "owner": self.owner,
            "tempo_bpm": self.settings.tempo_bpm,
            "key": self.settings.key,
            "time_signature": f"{beats}/{unit}",
            "frame_ms": self.settings.frame_ms,
            "private": self.settings.private,
            "created_at": self.created_at,
            "participants": [p.public() for p in self.participants.values()],
            "max_participants": self.max_participants,
            "recording": self.recording_id,
            "room": self.room.public() if self.room is not None else None,
            "chords": " ".join(self.settings.chords),
            "bandmate": self.bandmate,
            "hosted_by": self.hosted_by,
        }

    def by_token(self, token: str) -> Participant:
        """The participant holding ``token``."""
        given = token.encode("utf-8", "replace")  # compare_digest refuses non-ASCII str
        for participant in self.participants.values():
            if secrets.compare_digest(participant.token.encode(), given):
                return participant
        raise ForbiddenError("participant token is not valid for this session; join again")

    def by_address(self, address: str) -> Participant | None:
        """The participant with this address, if present."""
        for participant in self.participants.values():
            if participant.address == address:
                return participant
        return None

    def get(self, participant_id: str) -> Participant:
        """A participant by id."""
        participant = self.participants.get(participant_id)
        if participant is None:
            raise NotFoundError(f"no participant {participant_id!r} in this session")
        return participant

    def require_owner(self, participant: Participant) -> None:
        """Only the owner may do this."""
        if participant.address != self.owner:
            raise ForbiddenError("only the session owner can do that")

    def add(self, address: str, name: str, slot: int) -> Participant:
        """Admit ``address`` (auth and invite already checked)."""
        if address in self.removed:
            raise ForbiddenError("the owner removed you from this session")
        if len(self.participants) >= self.max_participants:
            raise SessionError(f"session is full ({self.max_participants} participants)")
        participant = Participant(
            id=secrets.token_hex(6),
            address=address,
            name=name,
            slot=slot,
            token=secrets.token_urlsafe(24),
            joined_at=time.time(),
        )
        self.participants[participant.id] = participant
        return participant
