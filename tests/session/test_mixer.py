"""The mixer on its own: personal mixes, panning, self-monitor, click, concealment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from node.session.metronome import Metronome
from node.session.mixer import SessionMixer
from node.session.render import StereoPanner


class PcmDecoder:
    """Payload = raw float32 samples (the codec is not under test here)."""

    def decode(self, payload: bytes, out: np.ndarray) -> bool:
        if len(payload) != out.shape[0] * 4:
            return False
        samples = np.frombuffer(payload, dtype=np.float32)
        out[:] = samples
        return True


def frame(value: float) -> bytes:
    return np.full(960, value, dtype=np.float32).tobytes()


def run(mixer: SessionMixer, sources: dict[int, float], ticks: int) -> None:
    """Frame n arrives at n×20 ms + 1 ms; tick n runs at n×20 ms + 5 ms (simulated time)."""
    for n in range(ticks):
        for slot, value in sources.items():
            mixer.push_packet(slot, n, n * 960, frame(value), arrival=n * 0.02 + 0.001)
        mixer.tick(now=n * 0.02 + 0.005)


def test_each_listener_hears_the_others_panned_not_itself() -> None:
    mixer = SessionMixer(4)
    a = mixer.allocate("a", PcmDecoder())
    b = mixer.allocate("b", PcmDecoder())
    mixer.set_position(a, 5.0, 0.0)  # a is right of b
    mixer.set_position(b, 0.0, 0.0)
    run(mixer, {a: 0.2, b: 0.1}, 5)
    left, right = mixer.out_left[b], mixer.out_right[b]
    assert left[0] == pytest.approx(0.0, abs=1e-6)
    assert right[0] == pytest.approx(0.2, rel=1e-5)
    # a hears b on its left, and not itself
    assert mixer.out_left[a][0] == pytest.approx(0.1, rel=1e-5)
    assert mixer.out_right[a][0] == pytest.approx(0.0, abs=1e-6)


def test_constant_power_pan_law() -> None:
    panner = StereoPanner(3, 3)
    positions = np.array([[0, 0], [3, 4], [-10, 0]], dtype=np.float32)
    panner.set_geometry(positions)
    left, right = panner.pan_gains(0, 1)
    theta = (0.6 + 1) * math.pi / 4
    assert (left, right) == pytest.approx((math.cos(theta), math.sin(theta)), rel=1e-5)
    assert left**2 + right**2 == pytest.approx(1.0, rel=1e-5)
    left, right = panner.pan_gains(0, 2)
    assert (left, right) == pytest.approx((1.0, 0.0), abs=1e-6)


def test_gain_mute_and_self_monitor() -> None:
    mixer = SessionMixer(4)
    a = mixer.allocate("a", PcmDecoder())
    b = mixer.allocate("b", PcmDecoder())
    mixer.set_gain(b, a, 0.0)  # b mutes a
    mixer.set_self_monitor(a, True)
    run(mixer, {a: 0.2, b: 0.1}, 3)
    assert np.all(mixer.out_left[b] == 0) and np.all(mixer.out_right[b] == 0)
    centre = math.sqrt(0.5)
    assert mixer.out_left[a][0] == pytest.approx((0.2 + 0.1) * centre, rel=1e-5)


def test_a_musicians_input_gain_applies_in_every_mix_on_top_of_each_listeners_own() -> None:
    mixer = SessionMixer(4)
    a = mixer.allocate("a", PcmDecoder())
    b = mixer.allocate("b", PcmDecoder())
    c = mixer.allocate("c", PcmDecoder())
    mixer.set_input_gain(a, 0.5)  # a turns their own input down
    mixer.set_gain(c, a, 2.0)  # c still wants a louder, in c's mix
    run(mixer, {a: 0.2, b: 0.0, c: 0.0}, 3)
    centre = math.sqrt(0.5)
    assert mixer.out_left[b][0] == pytest.approx(0.2 * 0.5 * centre, rel=1e-5)
    assert mixer.out_left[c][0] == pytest.approx(0.2 * 0.5 * 2.0 * centre, rel=1e-5)
    mixer.release(a)
    a2 = mixer.allocate("a2", PcmDecoder())
    run(mixer, {a2: 0.2, b: 0.0, c: 0.0}, 3)
    assert mixer.out_left[b][0] == pytest.approx(0.2 * centre, rel=1e-5), "a new slot starts at 1"


def test_missing_frames_are_concealed_without_a_jump() -> None:
    mixer = SessionMixer(2)
    a = mixer.allocate("a", PcmDecoder())
    b = mixer.allocate("b", PcmDecoder())
    t = np.arange(960 * 20) / 48000
    wave = (0.3 * np.sin(2 * math.pi * 200 * t)).astype(np.float32)
    out = []
    for n in range(20):
        if n != 10:  # frame 10 is lost
            mixer.push_packet(
                a, n, n * 960, wave[n * 960 : (n + 1) * 960].tobytes(), arrival=n * 0.02 + 0.001
            )
        mixer.tick(now=n * 0.02 + 0.005)
        out.append(mixer.out_right[b].copy())
    signal = np.concatenate(out)
    assert mixer.slots[a].jitter.stats.lost == 1  # type: ignore[union-attr]
    largest_step = np.max(np.abs(np.diff(signal[960 * 3 :])))
    normal_step = np.max(np.abs(np.diff(signal[960 * 3 : 960 * 9])))
    assert largest_step < 3 * normal_step
    assert np.sqrt(np.mean(signal[960 * 11 : 960 * 12] ** 2)) > 0.01  # not a dropout


def test_click_only_for_listeners_who_want_it_and_on_the_grid() -> None:
    mixer = SessionMixer(2, tempo_bpm=150)  # a beat every 0.4 s = 19200 samples = 20 ticks
    a = mixer.allocate("a", PcmDecoder())
    b = mixer.allocate("b", PcmDecoder())
    mixer.set_click(a, True)
    beats = []
    left_a = []
    for _ in range(45):
        report = mixer.tick()
        if report.beat is not None:
            beats.append((mixer.ticks - 1, report.beat))
        left_a.append(mixer.out_left[a].copy())
        assert np.all(mixer.out_left[b] == 0)
    assert beats == [(0, 0), (20, 1), (40, 2)]
    audio = np.concatenate(left_a)
    onsets = np.flatnonzero(np.abs(audio) > 0.01)
    assert onsets[0] < 48  # the click starts at the first sample of beat 0 (after its attack)
    assert np.any((onsets >= 19200) & (onsets < 19200 + 48))


def test_an_empty_session_still_counts_beats() -> None:
    mixer = SessionMixer(2, tempo_bpm=150)
    beats = [mixer.tick(now=n * 0.02).beat for n in range(45)]
    assert [(i, b) for i, b in enumerate(beats) if b is not None] == [(0, 0), (20, 1), (40, 2)]


def test_metronome_tempo_change_keeps_counting() -> None:
    metronome = Metronome(120, 4)
    assert metronome.beat_start(2) == 48000
    metronome.set_tempo(60, 3, at_sample=60000)  # during beat 2
    assert metronome.beat_at(60000) == 2
    assert metronome.beat_start(3) == 72000  # beat 2 ends on the old grid
    assert metronome.beat_start(4) == 72000 + 48000


def test_full_session_refuses_more_slots() -> None:
    mixer = SessionMixer(1)
    mixer.allocate("a", PcmDecoder())
    with pytest.raises(OverflowError):
        mixer.allocate("b", PcmDecoder())


def test_tick_never_raises_on_bad_payloads() -> None:
    mixer = SessionMixer(2)
    a = mixer.allocate("a", PcmDecoder())
    mixer.push_packet(a, 0, 0, b"garbage", arrival=0.0)
    mixer.tick(now=0.005)
    assert mixer.slots[a].counters.decode_errors == 1  # type: ignore[union-attr]
    assert mixer.tick_errors == 0


class SizedPcmDecoder(PcmDecoder):
    """Raw float32 packets of any length, which it reports (as the Opus decoder does)."""

    @staticmethod
    def samples_of(payload: bytes) -> int:
        return len(payload) // 4


@pytest.mark.parametrize(("frame", "packet"), [(240, 480), (960, 240), (480, 960)])
def test_packets_longer_or_shorter_than_the_frame_play_every_sample_in_order(
    frame: int, packet: int
) -> None:
    """A browser that sends 10 ms packets into a 5 ms session (or a client with 5 ms packets
    in a 20 ms one): the mixer reads each packet's length, decodes whole packets and carries
    what a tick does not play to the next, so the stream comes out whole and in order."""
    mixer = SessionMixer(2, frame_samples=frame)
    a = mixer.allocate("a", SizedPcmDecoder())
    b = mixer.allocate("b", PcmDecoder())
    mixer.set_position(a, 0.0, 0.0)
    mixer.set_position(b, 0.0, 0.0)
    ramp = (np.arange(48000, dtype=np.float32) % 4800) / 48000  # a slow sawtooth
    frame_s, packet_s = frame / 48000, packet / 48000
    out = []
    sent = 0
    for tick in range(int(0.5 / frame_s)):
        now = tick * frame_s + 0.004
        while sent * packet_s + 0.001 <= now:  # packets arrive as they become complete
            chunk = ramp[sent * packet : (sent + 1) * packet]
            mixer.push_packet(
                a, sent, sent * packet, chunk.tobytes(), arrival=sent * packet_s + 0.001
            )
            sent += 1
        mixer.tick(now=now)
        out.append(mixer.sources[a].copy())
    slot = mixer.slots[a]
    assert slot is not None
    assert slot.jitter.frame_samples == packet, "the buffer counts in the stream's packets"
    assert slot.counters.packet_resizes == 1
    audio = np.concatenate(out)
    start = int(np.flatnonzero(audio)[0])
    played = audio[start : start + 12000]
    expected = ramp[round(float(played[0]) * 48000) :][: played.shape[0]]
    assert np.allclose(played, expected, atol=1e-6), "every sample, in order, nothing repeated"
    assert slot.jitter.stats.lost == 0
