"""Light WebRTC clients for the benchmarks that need many musicians on one machine.

Each is a real aiortc peer connection to the node (ICE, DTLS and SRTP both ways) that does as
little else as it can: it sends Opus packets encoded once up front, each wrapped in a 12-byte
RTP header and handed straight to its DTLS transport by one pacing task (no sender pipeline),
and it drops what it receives right after SRTP decryption. So the clients' CPU does not swamp
the node's, and a bench measures the node.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from typing import Any

import av  # noqa: F401 - loaded before aiortc so packets are shared types
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from client.session import JamClient
from node.media.codec import OpusEncoder
from node.media.peer import set_opus_params, set_ptime


def opus_payloads(frame_ms: int, freq_hz: float = 330.0) -> list[bytes]:
    """One second of a tone as Opus packets of ``frame_ms``."""
    frame = 48 * frame_ms
    encoder = OpusEncoder(1, 96000, frame_ms=frame_ms, application="lowdelay")
    t = np.arange(48000) / 48000
    pcm = (np.sin(2 * np.pi * freq_hz * t) * 6000).astype(np.int16)
    return [
        bytes(p)
        for i in range(48000 // frame)
        for p in encoder.encode(pcm[i * frame : (i + 1) * frame])
    ]


class _Silent(MediaStreamTrack):
    """Gives the connection an outgoing audio stream (and its SSRC) but never a frame: the
    pacing task sends the packets itself."""

    kind = "audio"

    async def recv(self):  # type: ignore[no-untyped-def]
        await asyncio.Future()


async def _drop(data: bytes, arrival_time_ms: int) -> None:
    """Received RTP, already decrypted: not parsed, not routed, not decoded."""


async def _pace(pc: RTCPeerConnection, payload_type: int, payloads: list[bytes], frame_ms: int):
    sender = pc.getSenders()[0]
    dtls = sender.transport
    ssrc = sender._ssrc
    frame, period = 48 * frame_ms, frame_ms / 1000
    seq, start = 0, time.monotonic()
    while True:
        due = start + seq * period
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        header = struct.pack("!BBHII", 0x80, payload_type, seq & 0xFFFF,
                             (seq * frame) & 0xFFFFFFFF, ssrc)  # fmt: skip
        try:
            await dtls._send_rtp(header + payloads[seq % len(payloads)])
        except ConnectionError:
            return
        seq += 1


class LightClient:
    """One musician: joined, connected and sending (``start``), then ``leave`` or ``vanish``."""

    def __init__(self, url: str, session_id: str, account: Any, name: str) -> None:
        self.client = JamClient(url, account, name)
        self.session_id = session_id
        self.pc: RTCPeerConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, payloads: list[bytes], frame_ms: int, x: float, y: float) -> None:
        """Join, set a pose, connect and start sending."""
        client, sid = self.client, self.session_id
        await client.__aenter__()
        await client.join(sid)
        await client.control(type="pose", x=x, y=y)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.addTrack(_Silent())
        await pc.setLocalDescription(await pc.createOffer())
        sdp = set_opus_params(set_ptime(pc.localDescription.sdp, frame_ms), {"stereo": "1"})
        answer = await client.request(
            "POST", f"/api/sessions/{sid}/rtc", {"type": "offer", "sdp": sdp}, auth=True
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        found = re.search(r"a=rtpmap:(\d+) opus/48000", answer["sdp"])
        assert found, "the node's answer has no Opus"
        pc.getSenders()[0].transport._handle_rtp_data = _drop
        deadline = time.monotonic() + 60
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                raise RuntimeError(f"{client.name} could not connect ({pc.connectionState})")
            await asyncio.sleep(0.05)
        client.pc = pc
        self._task = asyncio.create_task(_pace(pc, int(found.group(1)), payloads, frame_ms))

    async def leave(self) -> None:
        """Say goodbye and close everything."""
        if self._task is not None:
            self._task.cancel()
        await self.client.close()

    async def vanish(self) -> None:
        """Stop without a goodbye (a killed client, a closed tab): the node must notice."""
        if self._task is not None:
            self._task.cancel()
        if self.pc is not None:
            await self.pc.close()
        self.client.token = ""  # so closing the client sends no leave
        await self.client.close()
