"""Round trips: Opus through libopus, SDP fmtp munging, WAV headers after a crash."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import soundfile
from hypothesis import example, given, settings
from hypothesis import strategies as st

from node.media.codec import OpusEncoder, OpusFrameDecoder
from node.media.peer import set_opus_params
from node.media.recorder import repair_wav, wav_header

SDP = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
)


def test_opus_round_trip_keeps_a_tone() -> None:
    encoder, decoder = OpusEncoder(1, 96000), OpusFrameDecoder(960, 1)
    t = np.arange(960 * 50) / 48000
    tone = 0.5 * np.sin(2 * math.pi * 440 * t)
    out = np.zeros(960, dtype=np.float32)
    decoded = []
    for n in range(50):
        pcm = (tone[n * 960 : (n + 1) * 960] * 32767).astype(np.int16)
        for packet in encoder.encode(pcm):
            assert packet.pts == n * 960
            assert decoder.decode(bytes(packet), out)
            decoded.append(out.copy())
    audio = np.concatenate(decoded)[960 * 5 :]
    reference = tone[960 * 5 :]
    # Align for the codec's delay, then compare.
    lag = int(np.argmax(np.correlate(audio[:4800], reference[:4800], mode="full"))) - 4799
    aligned = audio[max(0, lag) :][: reference.shape[0] - 960]
    error = aligned - reference[max(0, -lag) :][: aligned.shape[0]]
    snr_db = 10 * math.log10(np.mean(reference**2) / np.mean(error**2))
    assert snr_db > 20
    assert decoder.conceal(out) and np.all(np.isfinite(out))
    assert not decoder.decode(b"", out)


params = st.dictionaries(
    st.sampled_from(["stereo", "sprop-stereo", "maxaveragebitrate", "minptime", "cbr"]),
    st.sampled_from(["0", "1", "96000", "10"]),
    max_size=5,
)


@given(params, params)
@example({}, {})
def test_fmtp_munging_merges_and_keeps_the_rest(
    first: dict[str, str], second: dict[str, str]
) -> None:
    once = set_opus_params(SDP, first)
    twice = set_opus_params(once, second)
    fmtp = next(line for line in twice.split("\r\n") if line.startswith("a=fmtp:111 "))
    values = dict(item.split("=") for item in fmtp[len("a=fmtp:111 ") :].split(";"))
    assert values == {"minptime": "10", "useinbandfec": "1", **first, **second}
    assert twice.count("a=fmtp:111") == 1
    assert twice.replace(fmtp, "") == SDP.replace("a=fmtp:111 minptime=10;useinbandfec=1", "")
    assert "\r\r" not in twice and "\n\n" not in twice


@settings(max_examples=30, deadline=None)
@given(frames=st.integers(0, 40), channels=st.sampled_from([1, 2]), torn=st.integers(0, 3))
def test_wav_left_by_a_crash_is_repaired(frames: int, channels: int, torn: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        samples = (np.arange(frames * 960 * channels) % 1000).astype(np.int16)
        # What a killed writer leaves: a header claiming no data, then data, maybe torn.
        path.write_bytes(
            wav_header(channels, 48000, 0) + samples.tobytes()[: max(0, samples.nbytes - torn)]
        )
        repair_wav(path)
        audio, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
        assert rate == 48000 and audio.shape[1] == channels
        whole = (samples.nbytes - torn) // (2 * channels) if samples.nbytes >= torn else 0
        assert audio.shape[0] == whole
        assert np.array_equal(audio.reshape(-1), samples[: whole * channels])
