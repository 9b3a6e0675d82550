"""A thin ctypes binding to the system libopus (Debian's libopus0).

Why not PyAV's libopus: PyAV holds the GIL while it encodes, so every personal mix encoded on
the mix thread stalls the event loop (and the other way round). ctypes releases the GIL for
the duration of each foreign call, so encoding runs beside the loop on a second core. It
also gives us what PyAV hides: the decoder's own packet-loss concealment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import numpy as np
import numpy.typing as npt

from node.errors import MediaError

OPUS_APPLICATION_AUDIO = 2049
OPUS_APPLICATION_RESTRICTED_LOWDELAY = 2051
"""CELT only: 2.5 ms of look-ahead instead of 6.5 ms (no SILK, no speech/music switching)."""
APPLICATIONS = {"audio": OPUS_APPLICATION_AUDIO, "lowdelay": OPUS_APPLICATION_RESTRICTED_LOWDELAY}
LOOKAHEAD_MS = {"audio": 6.5, "lowdelay": 2.5}
"""The encoder's algorithmic delay by application: 2.5 ms of CELT look-ahead, plus 4 ms of
delay compensation unless the application is restricted low delay."""
FRAME_SAMPLES_48K = (120, 240, 480, 960, 1920, 2880)
"""Frame lengths Opus can encode: 2.5, 5, 10, 20, 40 and 60 ms at 48 kHz."""
OPUS_SET_BITRATE = 4002
OPUS_SET_COMPLEXITY = 4010
OPUS_SET_INBAND_FEC = 4012
OPUS_SET_PACKET_LOSS_PERC = 4014
OPUS_SET_SIGNAL = 4024
OPUS_SIGNAL_MUSIC = 3002
MAX_PACKET = 4000

_lib: Any = None

# Samples (at 48 kHz) of one frame for each TOC configuration (RFC 6716 §3.1).
_TOC_FRAME = tuple(
    (480, 960, 1920, 2880)[c % 4] if c < 12 else (480, 960)[c % 2] if c < 16 else
    (120, 240, 480, 960)[c % 4]
    for c in range(32)
)  # fmt: skip


def packet_samples(packet: bytes) -> int:
    """Samples per channel (48 kHz) that an Opus packet decodes to, read from its TOC byte;
    0 for something that is not a well-formed Opus packet header."""
    if not packet:
        return 0
    toc = packet[0]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code < 3:
        frames = 2
    else:
        if len(packet) < 2:
            return 0
        frames = packet[1] & 0x3F
    samples = frames * _TOC_FRAME[toc >> 3]
    return samples if 0 < samples <= 5760 else 0


def _load() -> Any:
    global _lib  # noqa: PLW0603 - one shared library handle per process
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("opus") or "libopus.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise MediaError(
            "libopus is not installed: `apt-get install libopus0` (make install does this)"
        ) from None
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_encoder_ctl.restype = ctypes.c_int
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_encode.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int32,
    ]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode_float.restype = ctypes.c_int
    lib.opus_decode_float.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    _lib = lib
    return lib


class _State:
    """A libopus encoder or decoder state, destroyed with its Python object."""

    _destroy = ""
    _handle: ctypes.c_void_p | None = None

    def __init__(self, lib: Any, handle: int, channels: int) -> None:
        self._lib = lib
        self._handle = ctypes.c_void_p(handle)
        self.channels = channels

    @property
    def handle(self) -> int:
        """The state's address (for ``node.media.batch``); 0 once destroyed."""
        return (self._handle.value or 0) if self._handle is not None else 0

    def __del__(self) -> None:
        handle = self._handle
        if handle:
            getattr(self._lib, self._destroy)(handle)
            self._handle = None


class Encoder(_State):
    """libopus encoder in music mode: int16 interleaved frames in, packet bytes out."""

    _destroy = "opus_encoder_destroy"

    def __init__(
        self,
        channels: int,
        bitrate_bps: int,
        complexity: int = 5,
        sample_rate: int = 48000,
        application: str = "audio",
    ) -> None:
        lib = _load()
        error = ctypes.c_int(0)
        if application not in APPLICATIONS:
            raise MediaError(f"opus application must be one of {sorted(APPLICATIONS)}")
        handle = lib.opus_encoder_create(
            sample_rate, channels, APPLICATIONS[application], ctypes.byref(error)
        )
        if error.value != 0 or not handle:
            raise MediaError(f"opus_encoder_create failed ({error.value})")
        super().__init__(lib, handle, channels)
        for request, value in (
            (OPUS_SET_BITRATE, bitrate_bps),
            (OPUS_SET_COMPLEXITY, complexity),
            (OPUS_SET_SIGNAL, OPUS_SIGNAL_MUSIC),
            (OPUS_SET_INBAND_FEC, 1),
            (OPUS_SET_PACKET_LOSS_PERC, 2),
        ):
            lib.opus_encoder_ctl(self._handle, ctypes.c_int(request), ctypes.c_int32(value))
        self._out = ctypes.create_string_buffer(MAX_PACKET)

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """Encode one frame (samples × channels, C-contiguous int16)."""
        frame_size = pcm.size // self.channels
        data = np.ascontiguousarray(pcm)
        size = self._lib.opus_encode(
            self._handle, data.ctypes.data, frame_size, self._out, MAX_PACKET
        )
        if size < 0:
            raise MediaError(f"opus_encode failed ({size})")
        return self._out.raw[:size]


class Decoder(_State):
    """libopus decoder to float32 (interleaved when stereo), with built-in concealment."""

    _destroy = "opus_decoder_destroy"

    def __init__(self, channels: int, sample_rate: int = 48000) -> None:
        lib = _load()
        error = ctypes.c_int(0)
        handle = lib.opus_decoder_create(sample_rate, channels, ctypes.byref(error))
        if error.value != 0 or not handle:
            raise MediaError(f"opus_decoder_create failed ({error.value})")
        super().__init__(lib, handle, channels)

    def decode(self, payload: bytes | None, out: npt.NDArray[np.float32]) -> int:
        """Decode ``payload`` (None: conceal one frame) into ``out``; samples per channel or <0."""
        frame_size = out.size // self.channels
        samples: int = self._lib.opus_decode_float(
            self._handle, payload, len(payload) if payload else 0, out.ctypes.data, frame_size, 0
        )
        return samples
