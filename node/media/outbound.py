"""Outbound audio: an aiortc track that sends encoded frames handed to it by the mix clock."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from node.media.codec import EncodedPacket


class PacketTrack(MediaStreamTrack):
    """Audio track fed with ready Opus packets; bounded, keeps the newest, drops the oldest.

    ``offer`` is called on the event loop (the mix clock schedules it); ``recv`` is awaited
    by aiortc's sender. ``on_send`` sees each packet's departure for latency accounting.
    """

    kind = "audio"

    def __init__(
        self, max_frames: int = 4, on_send: Callable[[EncodedPacket, float], None] | None = None
    ) -> None:
        super().__init__()
        self._queue: collections.deque[EncodedPacket] = collections.deque(maxlen=max_frames)
        self._ready = asyncio.Event()
        self._on_send = on_send
        self.dropped = 0

    def offer(self, packet: EncodedPacket) -> None:
        """Queue a packet for sending (event loop thread only)."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(packet)
        self._ready.set()

    async def recv(self) -> EncodedPacket:  # aiortc sends packets as they are
        """Next packet to send; waits for the mix clock."""
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        packet = self._queue.popleft()
        if self._on_send is not None:
            self._on_send(packet, time.monotonic())
        return packet

    def stop(self) -> None:
        """End the track and wake a waiting sender."""
        super().stop()
        self._ready.set()
