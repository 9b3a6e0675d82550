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

from node.media import opus

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
        self._decoder = opus.Decoder(channels)

    @property
    def batch_handle(self) -> int:
        """The libopus state for the mixer's batched decode (mono only; 0: decode one by one)."""
        return self._decoder.handle if self.channels == 1 else 0

    @staticmethod
    def samples_of(payload: bytes) -> int:
        """How many samples ``payload`` decodes to (from its Opus header; 0: not Opus)."""
        return opus.packet_samples(payload)

    def decode(self, payload: bytes, out: F32) -> bool:
        """Decode into ``out``; False when the payload is not a valid Opus frame."""
        if not payload:
            return False
        samples = self._decoder.decode(payload, out)
        if samples <= 0:
            return False
        if samples < self.frame_samples:
            out[samples * self.channels :] = 0.0
        return True

    def conceal(self, out: F32) -> bool:
        """Opus's own packet-loss concealment for one missing frame."""
        return self._decoder.decode(None, out) > 0


class PcmFrameDecoder:
    """Raw float32 frames (the stock-aiortc baseline hands the mixer decoded audio)."""

    @staticmethod
    def samples_of(payload: bytes) -> int:
        """Samples in a raw float32 frame."""
        return len(payload) // 4

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
        push(seq % 65536, seq * pcm.shape[0], (pcm / 32768.0).astype(np.float32).tobytes())
        seq += 1


class OpusEncoder:
    """Encodes fixed-size s16 frames (mono or stereo) into Opus packets for aiortc."""

    def __init__(
        self,
        channels: int = 2,
        bitrate_bps: int = 128000,
        complexity: int = 5,
        frame_ms: float = 20,
        application: str = "audio",
    ) -> None:
        self.channels = channels
        self.frame_samples = round(SAMPLE_RATE * frame_ms / 1000)
        if self.frame_samples not in opus.FRAME_SAMPLES_48K:
            raise ValueError(f"Opus cannot encode {frame_ms} ms frames")
        self._encoder = opus.Encoder(channels, bitrate_bps, complexity, application=application)
        self._pts = 0

    @property
    def handle(self) -> int:
        """The libopus state, for encoding a whole tick at once (``node.media.batch``)."""
        return self._encoder.handle

    def encode(self, pcm: I16) -> list[EncodedPacket]:
        """Encode one frame: ``pcm`` is (frame_samples, channels) or flat interleaved s16."""
        return [self.packet(self._encoder.encode(pcm))]

    def packet(self, data: bytes) -> EncodedPacket:
        """Wrap the next frame's encoded bytes (made here or by the batch) as a timed packet."""
        packet = av.Packet(data)
        packet.pts = self._pts
        packet.time_base = TIME_BASE
        self._pts += self.frame_samples
        return packet

    def skip(self, frames: int) -> None:
        """``frames`` frames were not sent (the sender fell behind): the next packet's
        timestamp moves on by them, so a receiver conceals a gap instead of seeing every
        later packet as late and buffering the delay for good."""
        self._pts += max(0, frames) * self.frame_samples
