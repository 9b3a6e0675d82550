"""Click trains for latency benchmarks: tone bursts whose pitch names them, and their onsets.

A source sends a 5 ms burst every 200 ms, cycling through four pitches, and remembers when
each frame was handed over (the "mouth"); a sink's played-out audio is searched for onsets
and their pitch (the "ear"). Mouth-to-ear pairs each heard onset with the latest click of its
pitch sent before it, which is unambiguous for latencies up to 800 ms.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from client.session import FRAME, RATE, ArraySink

CLICK_EVERY = 9600  # samples: one click each 200 ms
CLICK_LEN = 240  # 5 ms burst
CLICK_FREQS = (1000.0, 1500.0, 2000.0, 2500.0)  # click k uses CLICK_FREQS[k % 4]: an
# onset's pitch names its click unambiguously for latencies up to 800 ms
WARMUP_S = 2.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``."""
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class ClickSource:
    """Silence with a 5 ms tone burst every 200 ms; remembers when each frame was taken."""

    def __init__(self, frame: int = FRAME) -> None:
        self.frame = frame
        self.frame_times: list[float] = []
        t = np.arange(CLICK_LEN) / RATE
        self._bursts = [
            (0.8 * np.sin(2 * np.pi * f * t) * np.hanning(CLICK_LEN)).astype(np.float32)
            for f in CLICK_FREQS
        ]
        self._n = 0

    def read(self, n: int = FRAME) -> np.ndarray:
        assert n == self.frame, "the click source hands over frames of one size"
        frame = np.zeros(n, dtype=np.float32)
        start = self._n * n
        for click in range((start // CLICK_EVERY) * CLICK_EVERY, start + n, CLICK_EVERY):
            lo = max(click, start)
            hi = min(click + CLICK_LEN, start + n)
            if hi > lo:
                burst = self._bursts[(click // CLICK_EVERY) % len(CLICK_FREQS)]
                frame[lo - start : hi - start] = burst[lo - click : hi - click]
        self.frame_times.append(time.monotonic())
        self._n += 1
        return frame

    def send_time(self, click: int) -> float | None:
        """When click ``click`` entered the "microphone": a frame is only handed over once
        all of it was captured, so its sample k is one frame - k/48000 older than the
        hand-over."""
        n = self.frame
        sample = click * CLICK_EVERY
        index = sample // n
        if index >= len(self.frame_times):
            return None
        return self.frame_times[index] - (n - (sample - index * n)) / RATE


def onsets(sink: ArraySink) -> list[tuple[float, int]]:
    """(play-out time, pitch class) of each click onset heard in ``sink``."""
    if not sink.frames:
        return []
    audio = np.concatenate(sink.frames).mean(axis=1)
    loud = np.flatnonzero(np.abs(audio) > 0.05)
    result = []
    last = -CLICK_EVERY
    freqs = np.fft.rfftfreq(4096, 1 / RATE)
    n = sink.frames[0].shape[0]
    for sample in loud:
        if sample - last > CLICK_EVERY // 2:
            window = audio[sample : sample + CLICK_LEN]
            peak = freqs[np.argmax(np.abs(np.fft.rfft(window, 4096)))]
            pitch = int(np.argmin([abs(peak - f) for f in CLICK_FREQS]))
            frame = sample // n
            # The sink's time stamps when a frame was handed over; its sample k plays k/48000
            # after that (as from a sound card that starts the frame at hand-over).
            result.append((sink.times[frame] + (sample - frame * n) / RATE, pitch))
        last = sample
    return result


def mouth_to_ear(
    source: ClickSource, sink: ArraySink, since: float = 0.0
) -> list[tuple[float, float]]:
    """(mouth time, latency in ms) of every click from ``source`` heard in ``sink`` whose
    mouth time is after ``since`` (monotonic)."""
    out = []
    for ear, pitch in onsets(sink):
        # The latest click of this pitch sent before the onset was heard.
        click = pitch
        mouth = None
        while (t := source.send_time(click)) is not None and t < ear:
            mouth = t
            click += len(CLICK_FREQS)
        if mouth is not None and mouth > since:
            out.append((mouth, (ear - mouth) * 1000))
    return out


def silence(seconds: float) -> Any:
    """Mono float32 zeros (a musician who only listens)."""
    return np.zeros(int(RATE * seconds), dtype=np.float32)
