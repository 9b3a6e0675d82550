"""A session's facts as typed events on one bounded bus.

Joins, leaves, presence, moves, turns, chat, settings, recordings, beats and levels are frozen
event dataclasses. The bus hands each to its synchronous listeners (the p2p bridge) and to
every event-socket subscription of the session, each a bounded queue: a subscriber that falls
``queue_size`` events behind is too slow or dead and is cut off (its socket closes), so one
stuck browser never holds memory or the loop. A participant's subscriptions are closed when
they leave or are removed, so nobody keeps reading a session they are no longer in.

``wire()`` is each event's JSON for the WebSocket (the web client's contract).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from node.session.session import Participant

log = logging.getLogger(__name__)

EVENT_QUEUE = 256
"""Events a subscriber may fall behind before it is cut off."""


@dataclass(frozen=True)
class Event:
    """Base of every session event."""

    def wire(self) -> dict[str, Any]:  # pragma: no cover - every event overrides it
        """The event as the WebSocket sends it."""
        raise NotImplementedError


@dataclass(frozen=True)
class SessionChanged(Event):
    """Settings, room, bandmate or anything else in the session's public view changed."""

    session: dict[str, Any]
    settings: bool = False
    """True when the owner changed tempo, metre, key, chords or room (bridged mirrors follow)."""

    def wire(self) -> dict[str, Any]:
        return {"type": "session", "session": self.session}


@dataclass(frozen=True)
class Joined(Event):
    """A participant was admitted."""

    participant: Participant = field(compare=False)
    public: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {"type": "joined", "participant": self.public}


@dataclass(frozen=True)
class PresenceChanged(Event):
    """A participant's connection came up, went down or came back."""

    participant: Participant = field(compare=False)
    public: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {"type": "participant", "participant": self.public}


@dataclass(frozen=True)
class Left(Event):
    """A participant left, was removed, or their connection did not come back in time."""

    participant: Participant = field(compare=False)
    reason: str = "left"

    def wire(self) -> dict[str, Any]:
        return {"type": "left", "participant": self.participant.id, "reason": self.reason}


@dataclass(frozen=True)
class Moved(Event):
    """A participant's stage position changed."""

    participant: Participant = field(compare=False)
    x: float
    y: float

    def wire(self) -> dict[str, Any]:
        return {"type": "moved", "participant": self.participant.id, "x": self.x, "y": self.y}


@dataclass(frozen=True)
class Turned(Event):
    """A participant turned their head."""

    participant: Participant = field(compare=False)
    yaw_deg: float
    pitch_deg: float

    def wire(self) -> dict[str, Any]:
        return {
            "type": "turned",
            "participant": self.participant.id,
            "yaw_deg": self.yaw_deg,
            "pitch_deg": self.pitch_deg,
        }


@dataclass(frozen=True)
class Chatted(Event):
    """A chat line."""

    participant: Participant = field(compare=False)
    text: str
    at: float

    def wire(self) -> dict[str, Any]:
        return {
            "type": "chat",
            "from": self.participant.id,
            "name": self.participant.name,
            "text": self.text,
            "at": self.at,
        }


@dataclass(frozen=True)
class RecordingChanged(Event):
    """Recording started (its id) or stopped (None)."""

    recording: str | None

    def wire(self) -> dict[str, Any]:
        return {"type": "recording", "recording": self.recording}


@dataclass(frozen=True)
class Closed(Event):
    """The session ended."""

    hosted_here: bool = True
    """False when this node only mirrored it (its host closed it, or nobody here uses it)."""

    def wire(self) -> dict[str, Any]:
        return {"type": "closed"}


@dataclass(frozen=True)
class Beat(Event):
    """The metronome's beat ``beat`` started (``bar_beat`` counts within the bar)."""

    beat: int
    bar_beat: int

    def wire(self) -> dict[str, Any]:
        return {"type": "beat", "beat": self.beat, "bar_beat": self.bar_beat}


@dataclass(frozen=True)
class Levels(Event):
    """Each participant's level and stream figures, ten times a second."""

    levels: dict[str, float]
    jitter: dict[str, dict[str, Any]]

    def wire(self) -> dict[str, Any]:
        return {"type": "levels", "levels": self.levels, "jitter": self.jitter}


@dataclass(frozen=True)
class Refused(Event):
    """The hosting node refused one of this node's musicians (a bridged session)."""

    participant_id: str
    error: str

    def wire(self) -> dict[str, Any]:
        return {"type": "refused", "participant": self.participant_id, "error": self.error}


@dataclass(frozen=True)
class ProofRequested(Event):
    """The hosting node asks one of this node's musicians to prove their address (bridged)."""

    participant_id: str
    message: str

    def wire(self) -> dict[str, Any]:
        return {"type": "prove", "participant": self.participant_id, "message": self.message}


Listener = Callable[[str, Event], None]
"""A synchronous listener: ``(session_id, event)``, called on the event loop."""


class Subscription:
    """One event socket's view of a session: a bounded queue (None means: closed)."""

    def __init__(self, session_id: str, participant_id: str | None, size: int) -> None:
        self.session_id = session_id
        self.participant_id = participant_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(size)
        self.closed = False
        self.reason = ""
        """Why the bus closed it ("left", "removed", "too slow", "closed")."""

    def close(self, reason: str) -> None:
        """Wake the reader with the end marker (dropping what it had not read)."""
        if self.closed:
            return
        self.closed = True
        self.reason = reason
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()


class EventBus:
    """Every session's events: synchronous listeners and bounded socket subscriptions."""

    def __init__(self, queue_size: int = EVENT_QUEUE) -> None:
        self._queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = {}
        self._listeners: list[Listener] = []
        self.cut_off = 0
        """Subscriptions closed because they fell too far behind."""

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with every event of every session."""
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        """Stop calling ``listener`` (idempotent)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def subscribe(self, session_id: str, participant_id: str | None = None) -> Subscription:
        """A new subscription to ``session_id``'s events, held by ``participant_id``."""
        sub = Subscription(session_id, participant_id, self._queue_size)
        self._subs.setdefault(session_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (its socket closed)."""
        subs = self._subs.get(sub.session_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.session_id]

    def subscribers(self, session_id: str) -> int:
        """How many sockets follow ``session_id``."""
        return len(self._subs.get(session_id, ()))

    def held_by(self, session_id: str, participant_id: str) -> int:
        """How many open subscriptions ``participant_id`` holds in ``session_id``."""
        return sum(
            1
            for sub in self._subs.get(session_id, ())
            if sub.participant_id == participant_id and not sub.closed
        )

    def publish(self, session_id: str, event: Event) -> None:
        """Hand ``event`` to every listener and every subscription of the session."""
        for listener in list(self._listeners):
            try:
                listener(session_id, event)
            except Exception:  # one broken listener must not stop the others
                log.exception("event listener failed on %s", type(event).__name__)
        for sub in list(self._subs.get(session_id, ())):
            if sub.closed:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # A subscriber this far behind is dead or too slow: cut it off.
                self.cut_off += 1
                sub.close("too slow")
                self.unsubscribe(sub)

    def close_participant(self, session_id: str, participant_id: str, reason: str) -> None:
        """Close every subscription ``participant_id`` holds in ``session_id``."""
        for sub in list(self._subs.get(session_id, ())):
            if sub.participant_id == participant_id:
                sub.close(reason)
                self.unsubscribe(sub)

    def close_session(self, session_id: str, reason: str = "closed") -> None:
        """Close every subscription of a session."""
        for sub in list(self._subs.get(session_id, ())):
            sub.close(reason)
        self._subs.pop(session_id, None)
