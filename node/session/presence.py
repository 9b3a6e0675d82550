"""Who is really still there: each participant's liveness, from what their connection does.

Pure logic, time injected. A participant is *live* while their audio arrives. They are *lost*
when their peer connection fails or closes, or when nothing has arrived from them for
``media_timeout_s``: a killed process or a closed tab sends no goodbye, and ICE consent
checks would take 30 s to notice. A lost participant keeps their place for ``grace_s``:
audio flowing again on the same connection, or a new connection, brings them back; after that
they are *gone* and leave every mix, the list and the lobby. Someone who joined but never
connected is gone after ``connect_timeout_s`` (or after ``grace_s`` once their last event
socket closed: a page that went away before its audio started); a new connection has
``first_media_s`` for ICE and DTLS before its first packet must arrive.

``check(now, last_packet)`` returns the transitions for the adapter to carry out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Liveness(enum.Enum):
    """Where a participant stands."""

    JOINED = "joined"
    """Admitted, no peer connection yet."""
    LIVE = "live"
    LOST = "lost"
    GONE = "gone"


@dataclass(frozen=True)
class Transition:
    """A participant moved to ``state`` for ``reason``."""

    participant_id: str
    state: Liveness
    reason: str


@dataclass
class _Entry:
    state: Liveness
    since_s: float
    connected_s: float = 0.0
    lost_s: float = 0.0
    reason: str = ""
    dead_peer: bool = False
    """The peer connection itself failed: only a new connection brings them back."""


class Presence:
    """Liveness of a session's local participants (module docstring)."""

    def __init__(
        self,
        media_timeout_s: float = 1.5,
        grace_s: float = 3.0,
        connect_timeout_s: float = 30.0,
        first_media_s: float = 10.0,
    ) -> None:
        self.media_timeout_s = media_timeout_s
        self.grace_s = grace_s
        self.connect_timeout_s = connect_timeout_s
        self.first_media_s = first_media_s
        """How long a new connection may take (ICE, DTLS) before its first packet."""
        self._entries: dict[str, _Entry] = {}

    def state(self, participant_id: str) -> Liveness | None:
        """Where a tracked participant stands (None: not tracked)."""
        entry = self._entries.get(participant_id)
        return entry.state if entry is not None else None

    def joined(self, participant_id: str, now: float) -> None:
        """A participant was admitted and has no connection yet."""
        self._entries[participant_id] = _Entry(Liveness.JOINED, now)

    def connected(self, participant_id: str, now: float) -> Transition | None:
        """A (new) peer connection was answered; a transition when this is a comeback."""
        entry = self._entries.get(participant_id)
        if entry is None:
            return None
        back = entry.state == Liveness.LOST
        entry.state, entry.since_s, entry.connected_s = Liveness.LIVE, now, now
        entry.dead_peer, entry.reason = False, ""
        return Transition(participant_id, Liveness.LIVE, "reconnected") if back else None

    def failed(self, participant_id: str, now: float, reason: str) -> Transition | None:
        """The participant's peer connection failed or closed: lost at once."""
        entry = self._entries.get(participant_id)
        if entry is None or entry.state not in {Liveness.LIVE, Liveness.LOST}:
            return None
        entry.dead_peer = True
        if entry.state == Liveness.LOST:
            return None
        return self._lose(participant_id, entry, now, reason)

    def socket_closed(self, participant_id: str, now: float, sockets_left: int) -> None:
        """An event socket of the participant closed; ``sockets_left`` are still open."""
        entry = self._entries.get(participant_id)
        if entry is not None and entry.state == Liveness.JOINED and sockets_left == 0:
            # A page that joined and went away before its audio started.
            entry.connected_s = -1.0  # marks "page gone" for check()
            entry.since_s = min(entry.since_s, now)
            entry.lost_s = now

    def forget(self, participant_id: str) -> None:
        """The participant left: stop tracking them."""
        self._entries.pop(participant_id, None)

    def check(self, now: float, last_packet: dict[str, float]) -> list[Transition]:
        """What changed by ``now``; ``last_packet`` has each participant's latest arrival."""
        out: list[Transition] = []
        for pid, entry in self._entries.items():
            if entry.state == Liveness.JOINED:
                page_gone = entry.connected_s < 0 and now - entry.lost_s > self.grace_s
                if page_gone or now - entry.since_s > self.connect_timeout_s:
                    entry.state = Liveness.GONE
                    reason = "page closed" if page_gone else "never connected its audio"
                    out.append(Transition(pid, Liveness.GONE, reason))
                continue
            packet = last_packet.get(pid, 0.0)
            heard = max(packet, entry.connected_s)
            if entry.state == Liveness.LIVE:
                started = packet > entry.connected_s  # this connection's audio has begun
                timeout = self.media_timeout_s if started else self.first_media_s
                if now - heard > timeout:
                    silent = now - heard
                    out.append(self._lose(pid, entry, now, f"no audio for {silent:.1f} s"))
            elif entry.state == Liveness.LOST:
                if not entry.dead_peer and heard > entry.lost_s:
                    entry.state, entry.since_s, entry.reason = Liveness.LIVE, now, ""
                    out.append(Transition(pid, Liveness.LIVE, "audio is back"))
                elif now - entry.lost_s > self.grace_s:
                    entry.state = Liveness.GONE
                    reason = f"connection lost ({entry.reason}; silent {now - heard:.1f} s)"
                    out.append(Transition(pid, Liveness.GONE, reason))
        for transition in out:
            if transition.state == Liveness.GONE:
                del self._entries[transition.participant_id]
        return out

    def _lose(self, pid: str, entry: _Entry, now: float, reason: str) -> Transition:
        entry.state, entry.since_s, entry.lost_s, entry.reason = Liveness.LOST, now, now, reason
        return Transition(pid, Liveness.LOST, reason)
