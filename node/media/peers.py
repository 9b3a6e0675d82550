"""The peer lifecycle of a session's local participants: connect, replace, fail, close.

One ``SessionPeers`` per session owns each participant's ``Peer`` (and, for the stock-aiortc
benchmark path, the task pumping its decoded audio). A new offer from someone who already has
a connection replaces it. When aiortc reports a connection failed or closed, ``on_state``
tells the session (``node.session.presence`` decides what that means); a connection that is
closed is forgotten here. Closing is idempotent and never waits on the caller's path longer
than aiortc's own close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from node.media.codec import pump_decoded
from node.media.datachannel import ChannelTrack
from node.media.inbound import PacketSink
from node.media.outbound import PacketTrack
from node.media.peer import Peer

log = logging.getLogger(__name__)

StateCallback = Callable[[str, Peer, str], None]
"""``(participant id, peer, connection state)`` whenever a peer's state changes."""


@dataclass
class _Connection:
    peer: Peer
    pump: asyncio.Task[None] | None = None


class SessionPeers:
    """Every local participant's WebRTC connection in one session."""

    def __init__(self, session_id: str, ice_servers: tuple[str, ...], on_state: StateCallback):
        self.session_id = session_id
        self._ice = ice_servers
        self._on_state = on_state
        self._connections: dict[str, _Connection] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, participant_id: str) -> Peer | None:
        """The participant's current peer, if any."""
        connection = self._connections.get(participant_id)
        return connection.peer if connection is not None else None

    def __contains__(self, participant_id: str) -> bool:
        return participant_id in self._connections

    def __len__(self) -> int:
        return len(self._connections)

    async def connect(
        self,
        participant_id: str,
        offer_sdp: str,
        sink: PacketSink,
        track: PacketTrack | ChannelTrack,
        uplink_bps: int,
        frame_ms: int,
        stock: bool = False,
        transport: str = "rtp",
    ) -> tuple[Peer, str]:
        """Answer ``offer_sdp`` with a new peer (replacing any old one); ``(peer, answer)``.

        ``stock`` keeps aiortc's own receive path and pumps its decoded frames into ``sink``
        (the benchmark baseline)."""
        await self.close(participant_id)
        peer = Peer(self._ice, None if stock else sink, track, transport)
        peer.on_state = lambda state: self._state(participant_id, peer, state)
        try:
            answer = await peer.answer(offer_sdp, uplink_bps, frame_ms)
        except Exception:
            await peer.close()
            raise
        connection = _Connection(peer)
        if stock:
            connection.pump = asyncio.create_task(pump_decoded(peer.receiver.track, sink))
        self._connections[participant_id] = connection
        return peer, answer

    def _state(self, participant_id: str, peer: Peer, state: str) -> None:
        log.info(
            "peer connection %s",
            state,
            extra={"session": self.session_id, "participant": participant_id},
        )
        connection = self._connections.get(participant_id)
        if connection is None or connection.peer is not peer:
            return  # an old, replaced connection: nobody cares how it ends
        if state == "closed":
            self._connections.pop(participant_id, None)
            if connection.pump is not None:
                connection.pump.cancel()
        self._on_state(participant_id, peer, state)

    async def close(self, participant_id: str) -> None:
        """Close the participant's connection (idempotent)."""
        connection = self._connections.pop(participant_id, None)
        if connection is None:
            return
        if connection.pump is not None:
            connection.pump.cancel()
        await connection.peer.close()

    def close_soon(self, participant_id: str) -> None:
        """Close the participant's connection without waiting for it."""
        connection = self._connections.pop(participant_id, None)
        if connection is None:
            return
        if connection.pump is not None:
            connection.pump.cancel()
        task = asyncio.get_running_loop().create_task(connection.peer.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close_all(self) -> None:
        """Close every connection and wait for the ones closing already (idempotent)."""
        for participant_id in list(self._connections):
            await self.close(participant_id)
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task
