"""The data-channel audio path's wire format, its outbound side, and ptime in SDP."""

from __future__ import annotations

import av
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from node.errors import InputError
from node.media.datachannel import MAX_QUEUED_PACKETS, ChannelTrack, pack, unpack
from node.media.opus import packet_samples
from node.media.peer import set_ptime, validate_offer
from tests.media.test_codec import SDP


@given(
    seq=st.integers(0, 2**16 - 1),
    ts=st.integers(0, 2**32 - 1),
    payload=st.binary(min_size=1, max_size=1500),
)
@example(seq=65535, ts=2**32 - 1, payload=b"\xff")
def test_messages_round_trip(seq: int, ts: int, payload: bytes) -> None:
    assert unpack(pack(seq, ts, payload)) == (seq, ts, payload)


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ("text", "binary"),
        (b"\x01\x00\x01\x00\x00\x00\x00", "no payload"),
        (b"\x02" + b"\x00" * 10, "unknown message kind"),
        (b"\x01" + b"\x00" * 6 + b"x" * 1501, "too large"),
    ],
)
def test_bad_messages_are_refused_by_reason(message: object, why: str) -> None:
    with pytest.raises(InputError, match=why):
        unpack(message)


class FakeChannel:
    """The two attributes ChannelTrack reads, and what it sends (the network's edge)."""

    def __init__(self) -> None:
        self.readyState = "connecting"
        self.bufferedAmount = 0
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def packet(pts: int, data: bytes = b"\xfc\x00") -> av.Packet:
    p = av.Packet(data)
    p.pts = pts
    return p


def test_the_outbound_side_sends_at_once_and_drops_rather_than_queues() -> None:
    track = ChannelTrack()
    track.offer(packet(0))  # no channel yet
    channel = FakeChannel()
    track.channel = channel  # type: ignore[assignment]
    track.offer(packet(480))  # not open yet
    channel.readyState = "open"
    track.offer(packet(960))
    track.offer(packet(1440))
    size = len(channel.sent[-1])
    channel.bufferedAmount = MAX_QUEUED_PACKETS * size  # a few packets waiting: still sent
    track.offer(packet(1920))
    channel.bufferedAmount += 1  # more than that is congestion: drop, do not pile up
    track.offer(packet(2400))
    assert [unpack(m)[:2] for m in channel.sent] == [(0, 960), (1, 1440), (2, 1920)]
    assert (track.sent, track.dropped) == (3, 3)
    track.stop()
    channel.bufferedAmount = 0
    track.offer(packet(2880))
    assert track.sent == 3


@pytest.mark.parametrize(
    ("toc", "samples"),
    [(0xFC, 960), (0xF4, 480), (0xEC, 240), (0xE4, 120), (0xFD, 1920), (0x08, 960), (0x78, 960)],
)
def test_packet_durations_from_the_opus_header(toc: int, samples: int) -> None:
    """CELT 20/10/5/2.5 ms, two 20 ms frames, SILK 20 ms, hybrid 20 ms (RFC 6716 §3.1)."""
    assert packet_samples(bytes([toc, 0])) == samples
    assert packet_samples(b"") == 0
    assert packet_samples(bytes([0xFF])) == 0  # code 3 needs its frame-count byte


@pytest.mark.parametrize("frame_ms", [5, 10, 20])
def test_the_answer_asks_for_the_sessions_packet_time(frame_ms: int) -> None:
    sdp = SDP.replace("a=rtpmap:0 PCMU/8000\r\n", "a=ptime:20\r\na=rtpmap:0 PCMU/8000\r\n")
    out = set_ptime(sdp, frame_ms)
    assert out.count("a=ptime:") == 1 and f"a=ptime:{frame_ms}\r\n" in out
    assert f"a=maxptime:{frame_ms}\r\n" in out
    # The lines stay inside the audio section, right after the Opus rtpmap.
    assert out.index("a=rtpmap:111") < out.index("a=ptime") < out.index("a=rtpmap:0")
    assert (
        set_ptime("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", 5).count("ptime")
        == 0
    )


def test_offers_are_checked_for_their_path() -> None:
    channel_offer = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    assert validate_offer(channel_offer, "datachannel") == channel_offer
    with pytest.raises(InputError, match="data-channel offer"):
        validate_offer(SDP, "datachannel")
    with pytest.raises(InputError, match="Opus audio"):
        validate_offer(channel_offer, "rtp")
