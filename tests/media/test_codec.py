"""Round trips: Opus through libopus (one by one and batched), SDP fmtp munging, WAV headers
after a crash."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import example, given, settings
from hypothesis import strategies as st

from node.media import batch, opus
from node.media.codec import OpusEncoder, OpusFrameDecoder
from node.media.peer import set_opus_params
from node.media.recorder import repair_wav, wav_header
from node.session.mixer import SessionMixer

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


def _tones(rows: int, frames: int, channels: int) -> np.ndarray:
    """A different tone per row, frames × 960 × channels, s16."""
    t = np.arange(960 * frames) / 48000
    out = np.zeros((rows, 960 * frames, channels), dtype=np.int16)
    for r in range(rows):
        out[r] = (0.3 * np.sin(2 * math.pi * (220 + 40 * r) * t) * 32767)[:, None].astype(np.int16)
    return out


@pytest.mark.parametrize("threads", [1, 3])
def test_batched_encode_gives_the_same_packets_as_one_by_one(threads: int) -> None:
    workers = batch.RowWorkers(threads, min_rows=1)
    rows, frames = 5, 10
    audio = _tones(rows, frames, 2)
    batched = [opus.Encoder(2, 128000) for _ in range(rows)]
    single = [opus.Encoder(2, 128000) for _ in range(rows)]
    order = np.array([3, 0, 4], dtype=np.int64)  # any subset of rows, in any order
    handles = np.array([batched[r].handle for r in order], dtype=np.int64)
    out = np.zeros((rows, opus.MAX_PACKET), dtype=np.uint8)
    sizes = np.zeros(rows, dtype=np.int32)
    for n in range(frames):
        pcm = np.ascontiguousarray(audio[:, n * 960 : (n + 1) * 960])
        workers.run(batch.encode_rows, len(order), handles, order, pcm, out, sizes)
        for k, r in enumerate(order):
            assert sizes[k] > 0
            assert out[k, : sizes[k]].tobytes() == single[r].encode(pcm[r])
    workers.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_batched_decode_and_concealment_match_one_by_one(threads: int) -> None:
    workers = batch.RowWorkers(threads, min_rows=2)
    rows, frames = 4, 12
    audio = _tones(rows, frames, 1)
    encoders = [opus.Encoder(1, 96000) for _ in range(rows)]
    packets = [
        [encoders[r].encode(audio[r, n * 960 : (n + 1) * 960]) for n in range(frames)]
        for r in range(rows)
    ]
    batched = [opus.Decoder(1) for _ in range(rows)]
    single = [opus.Decoder(1) for _ in range(rows)]
    handles = np.array([d.handle for d in batched], dtype=np.int64)
    order = np.arange(rows, dtype=np.int64)
    payload = np.zeros((rows, batch.MAX_PAYLOAD), dtype=np.uint8)
    lengths = np.zeros(rows, dtype=np.int32)
    out = np.zeros((rows + 1, 960), dtype=np.float32)  # one spare row, as the mixer has
    results = np.zeros(rows, dtype=np.int32)
    expected = np.zeros(960, dtype=np.float32)
    for n in range(frames):
        for r in range(rows):
            lost = (n + r) % 5 == 4  # each stream loses a different frame: PLC
            data = b"" if lost else packets[r][n]
            lengths[r] = len(data)
            payload[r, : len(data)] = np.frombuffer(data, dtype=np.uint8)
        workers.run(batch.decode_rows, rows, handles, order, payload, lengths, out, results)
        for r in range(rows):
            samples = single[r].decode(payload[r, : lengths[r]].tobytes() or None, expected)
            assert results[r] == samples == 960
            np.testing.assert_array_equal(out[r], expected)
    assert not out[rows].any()
    workers.close()


def test_a_failing_slice_is_raised_in_the_caller_and_the_helpers_go_on() -> None:
    workers = batch.RowWorkers(2, min_rows=1)
    seen: list[tuple[int, int]] = []

    def job(start: int, stop: int, fail_at: int) -> None:
        seen.append((start, stop))
        if start == fail_at:
            raise ValueError("slice failed")

    with pytest.raises(ValueError, match="slice failed"):
        workers.run(job, 4, 2)  # the helper's slice [2, 4) fails
    workers.run(job, 4, -1)
    workers.run(job, 1, -1)  # too small to split
    assert sorted(seen) == [(0, 1), (0, 2), (0, 2), (2, 4), (2, 4)]
    workers.close()


def test_mixer_decodes_opus_sources_in_one_batch_and_counts_bad_ones() -> None:
    mixer = SessionMixer(3)
    slots = [mixer.allocate(k, OpusFrameDecoder(960, 1)) for k in ("a", "b", "c")]
    audio = _tones(3, 30, 1)
    encoders = [opus.Encoder(1, 96000) for _ in slots]
    for n in range(30):
        for slot, encoder in zip(slots, encoders, strict=True):
            data = encoder.encode(audio[slot, n * 960 : (n + 1) * 960])
            if slot == 1 and n == 20:
                data = b"\xff" * 3  # not an Opus frame
            if slot == 2 and n == 21:
                data = b"\x00" * (batch.MAX_PAYLOAD + 1)  # larger than any Opus frame
            if not (slot == 0 and n == 22):  # a lost packet
                mixer.push_packet(slot, n, n * 960, data, arrival=n * 0.02 + 0.001)
        mixer.tick(now=n * 0.02 + 0.005)
        if n >= 5:  # after the codec's start-up, everyone hears both others
            assert np.sqrt(np.mean(mixer.out_left[0] ** 2 + mixer.out_right[0] ** 2)) > 0.01
    counters = [mixer.slots[s].counters for s in slots]  # type: ignore[union-attr]
    assert [c.decode_errors for c in counters] == [0, 1, 1]
    assert mixer.slots[0].jitter.stats.lost == 1  # type: ignore[union-attr]
    assert mixer.tick_errors == 0


class _BrokenEncoder(OpusEncoder):
    """An encoder that fails every frame (as a wrong build of libopus might)."""

    def encode(self, pcm):  # type: ignore[no-untyped-def]
        raise RuntimeError("this encoder is broken")


def test_a_failing_listener_encoder_is_counted_and_logged_sparingly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from node.media.engine import Listener, SessionMedia
    from node.media.outbound import PacketTrack

    mixer = SessionMixer(2)
    media = SessionMedia(mixer)
    good, broken = PacketTrack(), PacketTrack()
    media.listeners[0] = Listener(good, OpusEncoder(2, 96000))
    media.listeners[1] = Listener(broken, _BrokenEncoder(1, 64000))
    with caplog.at_level("ERROR", logger="node.media.engine"):
        for _ in range(1200):
            out = media.encode()
            assert [track for track, _ in out] == [good]  # the others still get their mix
    assert media.encode_errors == 1200
    assert len(caplog.records) == 11  # the first ten, then the thousandth
