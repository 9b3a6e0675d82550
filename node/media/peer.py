"""WebRTC peer connections for participants: offer in, answer out, audio both ways."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from node.errors import InputError, MediaError
from node.media.datachannel import LABEL as CHANNEL_LABEL
from node.media.datachannel import ChannelInbound, ChannelTrack
from node.media.inbound import PacketSink, tap_receiver
from node.media.outbound import PacketTrack

MAX_SDP_BYTES = 32 * 1024
_OPUS_RE = re.compile(r"^a=rtpmap:(\d+) opus/48000/2(?=\r?$)", re.IGNORECASE | re.MULTILINE)


def ice_configuration(urls: tuple[str, ...]) -> RTCConfiguration:
    """STUN/TURN servers from config; none by default so ICE never leaves the host/LAN."""
    servers = []
    for url in urls:
        # "turn:user:pass@host:port" carries credentials inline.
        match = re.match(r"^(turns?):([^:@]+):([^@]+)@(.+)$", url)
        if match:
            scheme, user, password, rest = match.groups()
            servers.append(
                RTCIceServer(urls=f"{scheme}:{rest}", username=user, credential=password)
            )
        else:
            servers.append(RTCIceServer(urls=url))
    return RTCConfiguration(iceServers=servers)


TRANSPORTS = ("rtp", "datachannel")
"""How a client's audio travels: RTP audio tracks, or Opus over a data channel."""


def validate_offer(sdp: object, transport: str = "rtp") -> str:
    """An SDP offer we are willing to parse: text, bounded, with an Opus audio section (or a
    data-channel section, for the data-channel path)."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise InputError("sdp must be a non-empty string (the offer from RTCPeerConnection)")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise InputError(f"sdp is larger than {MAX_SDP_BYTES} bytes")
    if not sdp.startswith("v=0"):
        raise InputError("sdp does not start with v=0: not a session description")
    if transport == "datachannel":
        if "m=application" not in sdp or "webrtc-datachannel" not in sdp:
            raise InputError("a data-channel offer needs an m=application webrtc-datachannel")
        return sdp
    if "m=audio" not in sdp or not _OPUS_RE.search(sdp):
        raise InputError("offer has no Opus audio section (m=audio with opus/48000/2)")
    return sdp


def opus_payload_type(sdp: str) -> int | None:
    """The payload type an SDP gives Opus (None when it has none)."""
    match = _OPUS_RE.search(sdp)
    return int(match.group(1)) if match else None


def set_ptime(sdp: str, frame_ms: int) -> str:
    """Ask for ``frame_ms`` packets in the audio section: ``a=ptime`` and ``a=maxptime``
    (replacing any the description had), next to the Opus rtpmap line."""
    match = _OPUS_RE.search(sdp)
    if not match:
        return sdp
    eol = "\r\n" if "\r\n" in sdp else "\n"
    start = sdp.rfind("m=audio", 0, match.start())
    end = sdp.find(eol + "m=", match.end())
    end = len(sdp) if end < 0 else end
    section = re.sub(r"^a=(max)?ptime:[^\r\n]*\r?\n?", "", sdp[start:end], flags=re.MULTILINE)
    rtpmap = _OPUS_RE.search(section)
    assert rtpmap is not None
    lines = f"{eol}a=ptime:{frame_ms}{eol}a=maxptime:{frame_ms}"
    section = section[: rtpmap.end()] + lines + section[rtpmap.end() :]
    return sdp[:start] + section + sdp[end:]


def set_opus_params(sdp: str, params: dict[str, str]) -> str:
    """Merge ``params`` into the fmtp line of the Opus payload type (adding one if absent)."""
    match = _OPUS_RE.search(sdp)
    if not match:
        return sdp
    pt = match.group(1)
    fmtp = re.search(rf"^a=fmtp:{pt} ([^\r\n]*)", sdp, re.MULTILINE)
    current: dict[str, str] = {}
    if fmtp:
        for item in fmtp.group(1).split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                current[key.strip()] = value.strip()
    current.update(params)
    line = f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in current.items())
    if fmtp:
        return sdp[: fmtp.start()] + line + sdp[fmtp.end() :]
    return sdp[: match.end()] + "\r\n" + line + sdp[match.end() :]


class Peer:
    """One participant's RTCPeerConnection: their audio in via the tap, their mix out."""

    def __init__(
        self,
        ice_urls: tuple[str, ...],
        sink: PacketSink | None,
        track: PacketTrack | ChannelTrack,
        transport: str = "rtp",
    ) -> None:
        self.pc = RTCPeerConnection(ice_configuration(ice_urls))
        self.track = track
        self.transport = transport
        """"rtp" (an audio track each way) or "datachannel" (``node.media.datachannel``)."""
        self._sink = sink
        self.inbound: ChannelInbound | None = None
        self.closed = asyncio.Event()
        self.on_state: Callable[[str], None] | None = None
        """Called with each new connection state ("connecting", "connected", "failed", …)."""

        @self.pc.on("connectionstatechange")
        async def _state() -> None:
            state = self.pc.connectionState
            if state in {"failed", "closed"}:
                self.closed.set()
            if self.on_state is not None:
                self.on_state(state)

    async def answer(self, offer_sdp: str, uplink_bps: int, frame_ms: int = 20) -> str:
        """Accept an offer with one audio m-line (or, for the data-channel path, one
        application m-line); returns the answer SDP, which asks for ``frame_ms`` packets."""
        if self.transport == "datachannel":
            return await self._answer_datachannel(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except (ValueError, KeyError, IndexError, AssertionError) as exc:
            raise InputError(f"malformed SDP offer: {exc or type(exc).__name__}") from None
        audio = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise InputError("offer has no audio transceiver")
        transceiver = audio[0]
        self.receiver = transceiver.receiver
        if self._sink is not None:  # None keeps aiortc's own receive path (benchmark baseline)
            tap_receiver(transceiver.receiver, self._sink)
        assert isinstance(self.track, PacketTrack)
        self.pc.addTrack(self.track)  # reuses the offer's audio transceiver: sendrecv
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            raise MediaError(f"could not answer the offer: {exc}") from None
        sdp = set_ptime(self.pc.localDescription.sdp, frame_ms)
        return set_opus_params(
            sdp,
            {
                "minptime": str(frame_ms),
                "useinbandfec": "1",
                "sprop-stereo": "1",
                "maxaveragebitrate": str(uplink_bps),
            },
        )

    async def _answer_datachannel(self, offer_sdp: str) -> str:
        sink, track = self._sink, self.track
        assert sink is not None
        assert isinstance(track, ChannelTrack)

        @self.pc.on("datachannel")
        def _channel(channel: RTCDataChannel) -> None:
            if channel.label != CHANNEL_LABEL or track.channel is not None:
                return  # one audio channel per peer; anything else is ignored
            self.inbound = ChannelInbound(channel, sink)
            track.channel = channel

        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except (ValueError, KeyError, IndexError, AssertionError) as exc:
            raise InputError(f"malformed SDP offer: {exc or type(exc).__name__}") from None
        except Exception as exc:
            raise MediaError(f"could not answer the offer: {exc}") from None
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def rtt_ms(self) -> float | None:
        """The round trip to the client from RTCP receiver reports (None until one came)."""
        try:
            for sender in self.pc.getSenders():
                for item in (await sender.getStats()).values():
                    rtt = getattr(item, "roundTripTime", None)
                    if item.type == "remote-inbound-rtp" and rtt is not None:
                        return float(rtt) * 1000
        except Exception:  # a connection closing under us: no figure this time
            return None
        return None

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        self.track.stop()
        await self.pc.close()
        self.closed.set()
