"""Opus through PyAV's libopus: music-mode encoders and decoders we control.

aiortc's own Opus encoder is fixed to ``application=voip`` at 96 kb/s; the node encodes each
personal mix itself (``application=audio``, stereo, configurable bitrate) and hands aiortc
ready packets, which it only packetises.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import av
import av.stream
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48000
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]
if TYPE_CHECKING:
    EncodedPacket: TypeAlias = av.Packet[av.stream.Stream]
else:  # the runtime class is not generic
    EncodedPacket = av.Packet
"""An Opus packet ready for aiortc (pts in 1/48000 s)."""


class OpusFrameDecoder:
    """Decodes one Opus packet per call into float32 samples (interleaved when stereo)."""

    def __init__(self, frame_samples: int = 960, channels: int = 1) -> None:
        self.frame_samples = frame_samples
        self.channels = channels
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.format = "s16"
        self._codec.layout = "stereo" if channels == 2 else "mono"
        self._codec.sample_rate = SAMPLE_RATE

    def decode(self, payload: bytes, out: F32) -> bool:
        """Decode into ``out``; False (and ``out`` untouched) when the payload is not Opus."""
        if not payload:
            return False
        try:
            frames = self._codec.decode(av.Packet(payload))
        except (av.error.FFmpegError, ValueError):
            return False
        written = 0
        n = out.shape[0]
        for frame in frames:
            samples = np.frombuffer(
                memoryview(frame.planes[0]), dtype=np.int16, count=frame.samples * self.channels
            )
            take = min(n - written, samples.shape[0])
            np.multiply(samples[:take], 1.0 / 32768.0, out=out[written : written + take])
            written += take
        if written == 0:
            return False
        if written < n:
            out[written:] = 0.0
        return True


class PcmFrameDecoder:
    """Raw float32 frames (the stock-aiortc baseline hands the mixer decoded audio)."""

    def decode(self, payload: bytes, out: F32) -> bool:
        """Copy ``payload`` into ``out`` when it is exactly one frame."""
        if len(payload) != out.shape[0] * 4:
            return False
        out[:] = np.frombuffer(payload, dtype=np.float32)
        return True


async def pump_decoded(track: Any, push: Callable[[int, int, bytes], None]) -> None:
    """Feed frames decoded by aiortc's stock receive path to ``push`` as raw float32."""
    seq = 0
    while True:
        try:
            frame = await track.recv()
        except Exception:  # MediaStreamError: the track ended
            return
        pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1)
        push(seq % 65536, seq * 960, (pcm / 32768.0).astype(np.float32).tobytes())
        seq += 1


class OpusEncoder:
    """Encodes fixed-size s16 frames (mono or stereo) into Opus packets for aiortc."""

    def __init__(
        self,
        channels: int = 2,
        bitrate_bps: int = 128000,
        complexity: int = 5,
        frame_ms: int = 20,
    ) -> None:
        self.channels = channels
        self.frame_samples = SAMPLE_RATE * frame_ms // 1000
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.bit_rate = bitrate_bps
        self._codec.format = "s16"
        self._codec.layout = "stereo" if channels == 2 else "mono"
        self._codec.sample_rate = SAMPLE_RATE
        self._codec.time_base = TIME_BASE
        self._codec.options = {
            "application": "audio",
            "frame_duration": str(frame_ms),
            "compression_level": str(complexity),
            "fec": "1",
            "packet_loss": "1",
        }
        self._codec.open()
        self._pts = 0
        self._layout = "stereo" if channels == 2 else "mono"

    def encode(self, pcm: I16) -> list[EncodedPacket]:
        """Encode one frame: ``pcm`` is (frame_samples, channels) or flat interleaved s16."""
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=self._layout)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += self.frame_samples
        packets = list(self._codec.encode(frame))
        for packet in packets:
            packet.time_base = TIME_BASE
        return packets
