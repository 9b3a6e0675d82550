"""Inbound audio: take RTP payloads out of aiortc before its fixed jitter buffer.

aiortc's receiver keeps RTCP statistics (so receiver reports and round-trip times still
work), then hands each packet to a 16-slot jitter buffer that waits for 4 frames and never
recovers its latency after a loss. We replace that buffer with a tap that forwards
``(sequence number, timestamp, payload)`` to our own per-participant jitter buffer and
returns nothing, so aiortc's decoder never runs for these streams.

This is the single place that depends on aiortc's private receiver layout (pinned 1.16.0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpReceiver

from node.errors import MediaError

PacketSink = Callable[[int, int, bytes], None]
_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


StreamSink = Callable[[int, int, int, bytes], None]
"""Receives ``(ssrc, sequence number, timestamp, payload)``: one receiver, many streams."""


class _Tap:
    """Stands in for aiortc's JitterBuffer: forwards each packet, never yields a frame."""

    def __init__(self, sink: StreamSink) -> None:
        self._sink = sink

    def add(self, packet: Any) -> tuple[bool, None]:
        self._sink(packet.ssrc, packet.sequence_number, packet.timestamp, bytes(packet._data))
        return False, None


def tap_receiver_streams(receiver: RTCRtpReceiver, sink: StreamSink) -> None:
    """Route every RTP payload the receiver gets, from any SSRC, to ``sink``."""
    if not hasattr(receiver, _ATTRIBUTE):
        raise MediaError(
            "this aiortc version has no receiver jitter buffer to replace; "
            "install the pinned aiortc==1.16.0"
        )
    setattr(receiver, _ATTRIBUTE, _Tap(sink))


def tap_receiver(receiver: RTCRtpReceiver, sink: PacketSink) -> None:
    """Route the receiver's RTP audio payloads to ``sink`` instead of aiortc's buffer."""
    tap_receiver_streams(receiver, lambda _ssrc, seq, ts, payload: sink(seq, ts, payload))
