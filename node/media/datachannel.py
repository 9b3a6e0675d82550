"""Audio over an unordered, unreliable WebRTC data channel: the browsers' low-latency path.

Why: a browser's WebRTC audio track goes through its own Opus encoder (6.5 ms of look-ahead,
10 ms packets at the least) and NetEq, whose receive buffer held 30-36 ms here even on
loopback. With WebCodecs the page encodes Opus itself (restricted low delay, 5 or 10 ms
frames), sends each packet as one data-channel message (``ordered: false,
maxRetransmits: 0``: a lost packet is lost, never a late one), decodes the node's mix and
plays it from an AudioWorklet with a small jitter buffer of its own. The node treats those
packets exactly like RTP ones (same jitter buffer, same mixer).

Wire format, both directions, one Opus packet per message::

    byte 0     kind (1: audio)
    bytes 1-2  sequence number (big endian)
    bytes 3-6  timestamp in 48 kHz samples (big endian)
    bytes 7-   the Opus packet

aiortc's SCTP stack is pure Python: ``bench/browser_latency.py`` reports the node's CPU per
musician on each path.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from aiortc import RTCDataChannel

from node.errors import InputError
from node.media.codec import EncodedPacket

log = logging.getLogger(__name__)

KIND_AUDIO = 1
HEADER = struct.Struct(">BHI")
MAX_PAYLOAD = 1500
LABEL = "jamnet-audio"
"""The label the page gives its audio channel."""
MAX_QUEUED_PACKETS = 4
"""A channel with more than this many packets' worth still unsent is congested: new mixes are
dropped, not queued. SCTP holds what its congestion window does not let out yet, and a
queue is latency: 16 KiB (the first limit) was a second of audio, and after an overload the
queue took ten seconds to drain."""


def pack(seq: int, timestamp: int, payload: bytes) -> bytes:
    """One audio message."""
    return HEADER.pack(KIND_AUDIO, seq & 0xFFFF, timestamp & 0xFFFFFFFF) + payload


def unpack(message: object) -> tuple[int, int, bytes]:
    """``(seq, timestamp, payload)`` of one audio message; InputError for anything else."""
    if not isinstance(message, bytes | bytearray):
        raise InputError("audio messages are binary")
    if len(message) <= HEADER.size or len(message) > HEADER.size + MAX_PAYLOAD:
        raise InputError("audio message has no payload or is too large")
    kind, seq, timestamp = HEADER.unpack_from(message)
    if kind != KIND_AUDIO:
        raise InputError(f"unknown message kind {kind}")
    return seq, timestamp, bytes(message[HEADER.size :])


class ChannelInbound:
    """Feeds a channel's audio messages to ``sink(seq, ts, payload)``; counts the bad ones."""

    def __init__(self, channel: RTCDataChannel, sink: Callable[[int, int, bytes], None]):
        self.bad = 0
        self._sink = sink

        @channel.on("message")
        def _message(message: Any) -> None:
            try:
                seq, timestamp, payload = unpack(message)
            except InputError:
                self.bad += 1
                if self.bad <= 10 or self.bad % 1000 == 0:
                    log.info("dropped a bad audio message (%d so far)", self.bad)
                return
            self._sink(seq, timestamp, payload)


class ChannelTrack:
    """The outbound side for a data-channel listener: ``offer`` sends each mix at once.

    It stands where a ``PacketTrack`` stands for RTP listeners (the mix clock hands it each
    tick's packet on the event loop). Nothing is queued here: a packet offered before the
    channel is open, or while it is congested, is dropped and counted."""

    def __init__(self) -> None:
        self.channel: RTCDataChannel | None = None
        self.dropped = 0
        self.sent = 0
        self._seq = 0
        self._stopped = False

    def offer(self, packet: EncodedPacket) -> None:
        """Send one mix packet (event loop thread only)."""
        channel = self.channel
        if self._stopped or channel is None or channel.readyState != "open":
            self.dropped += 1
            return
        message = pack(self._seq, packet.pts or 0, bytes(packet))
        if channel.bufferedAmount > MAX_QUEUED_PACKETS * len(message):
            self.dropped += 1
            return
        channel.send(message)
        self._seq += 1
        self.sent += 1

    def stop(self) -> None:
        """No more sending (idempotent)."""
        self._stopped = True
