"""A native jamnet client: signs in with a keyfile, sends one audio source, plays its mix.

Used by ``jamnet jam`` and by tests and benchmarks. It shares the node's own jitter buffer
and Opus code, so its receive path has the same small, adaptive latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from node.errors import JamnetError
from node.media.codec import EncodedPacket, OpusEncoder, OpusFrameDecoder
from node.media.inbound import tap_receiver
from node.media.peer import set_opus_params
from node.session.jitter import JitterBuffer, PopKind
from node.session.phase import ALIGN_EVERY_TICKS, alignment_shift

FRAME = 960
RATE = 48000
F32 = npt.NDArray[np.float32]


class ClientError(JamnetError):
    """The node refused a request or could not be reached."""


# --------------------------------------------------------------------- keys
# ------------------------------------------------------------------ sources
class AudioSource(Protocol):
    """Yields one mono float32 frame of 960 samples per call."""

    def read(self) -> F32:
        """The next 20 ms of audio."""


class ArraySource:
    """Plays a mono float array, then silence (or loops)."""

    def __init__(self, samples: F32, loop: bool = False) -> None:
        self._samples = samples.astype(np.float32)
        self._pos = 0
        self._loop = loop

    def read(self) -> F32:
        """Next frame."""
        frame = np.zeros(FRAME, dtype=np.float32)
        chunk = self._samples[self._pos : self._pos + FRAME]
        frame[: chunk.shape[0]] = chunk
        self._pos += FRAME
        if self._loop and self._pos >= self._samples.shape[0]:
            self._pos = 0
        return frame


def wav_source(path: Path, loop: bool = False) -> ArraySource:
    """A WAV/FLAC file as a mono 48 kHz source."""
    import soundfile
    from scipy.signal import resample_poly

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as exc:
        raise ClientError(f"cannot read audio file {path}: {exc}") from None
    mono = data.mean(axis=1)
    if rate != RATE:
        mono = resample_poly(mono, RATE, rate).astype(np.float32)
    return ArraySource(mono, loop)


class MicSource:
    """The default input device through sounddevice (PortAudio)."""

    def __init__(self) -> None:
        import collections

        import sounddevice

        self._frames: collections.deque[F32] = collections.deque(maxlen=8)
        self._stream = sounddevice.InputStream(
            samplerate=RATE,
            channels=1,
            dtype="float32",
            blocksize=FRAME,
            callback=lambda data, *_: self._frames.append(data[:, 0].copy()),
        )
        self._stream.start()

    def read(self) -> F32:
        """Newest captured frame, or silence when none is ready."""
        return self._frames.popleft() if self._frames else np.zeros(FRAME, dtype=np.float32)


# -------------------------------------------------------------------- sinks
class AudioSink(Protocol):
    """Receives stereo float32 frames (960 × 2)."""

    def write(self, frame: F32) -> None:
        """Play or store one frame."""

    def close(self) -> None:
        """Finish."""


class ArraySink:
    """Keeps everything played in memory (tests, benchmarks) and optionally writes a WAV."""

    def __init__(self, path: Path | None = None) -> None:
        self.frames: list[F32] = []
        self.times: list[float] = []
        self._path = path

    def write(self, frame: F32) -> None:
        """Store one frame with its play-out time."""
        self.frames.append(frame.copy())
        self.times.append(time.monotonic())

    def audio(self) -> F32:
        """Everything played so far as (samples, 2)."""
        if not self.frames:
            return np.zeros((0, 2), dtype=np.float32)
        return np.concatenate(self.frames)

    def close(self) -> None:
        """Write the WAV file if one was asked for."""
        if self._path is not None:
            import soundfile

            soundfile.write(str(self._path), self.audio(), RATE, subtype="PCM_16")


class SpeakerSink:
    """The default output device through sounddevice."""

    def __init__(self) -> None:
        import sounddevice

        self._stream = sounddevice.OutputStream(
            samplerate=RATE, channels=2, dtype="float32", blocksize=FRAME
        )
        self._stream.start()

    def write(self, frame: F32) -> None:
        """Queue one frame for the device."""
        self._stream.write(frame)

    def close(self) -> None:
        """Stop the device."""
        self._stream.stop()
        self._stream.close()


# -------------------------------------------------------------------- media
class SourceTrack(MediaStreamTrack):
    """Sends a source as mono Opus (music mode), paced by the wall clock."""

    kind = "audio"

    def __init__(
        self,
        source: AudioSource,
        bitrate_bps: int = 96000,
        on_frame: Callable[[F32, float], None] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._encoder = OpusEncoder(1, bitrate_bps, complexity=5)
        self._next = 0.0
        self._on_frame = on_frame
        self._pending: list[EncodedPacket] = []

    async def recv(self) -> EncodedPacket:  # aiortc sends packets as they are
        """Next packet, one every 20 ms."""
        while not self._pending:
            now = time.monotonic()
            if self._next == 0.0:
                self._next = now
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next += FRAME / RATE
            frame = self._source.read()
            if self._on_frame is not None:
                self._on_frame(frame, time.monotonic())
            pcm = np.clip(frame * 32767.0, -32768, 32767).astype(np.int16)
            self._pending = self._encoder.encode(pcm)
        return self._pending.pop(0)


class JamClient:
    """Joins a session on a node and exchanges audio with it."""

    def __init__(
        self,
        node_url: str,
        account: LocalAccount,
        name: str = "cli",
        verify_tls: bool = True,
        stock_receive: bool = False,
    ) -> None:
        self.node_url = node_url.rstrip("/")
        self.account = account
        self.name = name
        self.token = ""
        self.participant: dict[str, Any] = {}
        self.session: dict[str, Any] = {}
        self.jitter = JitterBuffer()
        self.pc: RTCPeerConnection | None = None
        self._decoder = OpusFrameDecoder(FRAME, channels=2)
        self._frame = np.zeros(FRAME * 2, dtype=np.float32)
        self._last = np.zeros(FRAME * 2, dtype=np.float32)
        self._inbox: list[tuple[int, int, bytes, float]] = []
        self._playout: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = verify_tls
        self._stock_receive = stock_receive
        """Play what aiortc's own receive path delivers (the benchmark baseline)."""
        self.on_play: Callable[[F32, float, float], None] | None = None
        """Called with (frame, play time, arrival time of that frame) for each played frame."""

    async def __aenter__(self) -> JamClient:
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = False
    ) -> dict[str, Any]:
        """Call the node's JSON API; raise ClientError with its message on refusal."""
        assert self._http is not None, "use `async with JamClient(...)`"
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        try:
            async with self._http.request(
                method, self.node_url + path, json=body, headers=headers, ssl=self._ssl
            ) as response:
                data = await response.json(content_type=None)
                if response.status >= 400:
                    raise ClientError(
                        f"{method} {path}: {response.status} "
                        f"{(data or {}).get('error', response.reason)}"
                    )
                result: dict[str, Any] = data
                return result
        except aiohttp.ClientError as exc:
            raise ClientError(f"cannot reach node at {self.node_url}: {exc}") from None

    async def signed(self) -> dict[str, Any]:
        """A fresh challenge signed with our key: the fields a proven request carries."""
        issued = await self.request("POST", "/api/challenges", {"address": self.account.address})
        signature = self.account.sign_message(encode_defunct(text=issued["message"])).signature
        return {
            "address": self.account.address,
            "nonce": issued["nonce"],
            "signature": "0x" + signature.hex().removeprefix("0x"),
        }

    async def create_session(self, name: str, **settings: Any) -> dict[str, Any]:
        """Create a session owned by this key."""
        return await self.request(
            "POST", "/api/sessions", {"name": name, **settings, **await self.signed()}
        )

    async def join(self, session_id: str, invite: str | None = None) -> dict[str, Any]:
        """Sign in to a session."""
        body: dict[str, Any] = {"name": self.name, **await self.signed()}
        if invite:
            body["invite"] = invite
        joined = await self.request("POST", f"/api/sessions/{session_id}/join", body)
        self.token = joined["token"]
        self.participant = joined["participant"]
        self.session = joined["session"]
        return joined

    async def control(self, **body: Any) -> None:
        """Send a control message (pose, render, gain, monitor, click, chat)."""
        await self.request("POST", f"/api/sessions/{self.session['id']}/control", body, auth=True)

    async def connect(
        self,
        source: AudioSource,
        sink: AudioSink,
        on_send: Callable[[F32, float], None] | None = None,
    ) -> None:
        """Open the WebRTC connection: send ``source``, play the personal mix into ``sink``."""
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(SourceTrack(source, on_frame=on_send))
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        sdp = set_opus_params(
            self.pc.localDescription.sdp, {"stereo": "1", "maxaveragebitrate": "128000"}
        )
        answer = await self.request(
            "POST",
            f"/api/sessions/{self.session['id']}/rtc",
            {"type": "offer", "sdp": sdp},
            auth=True,
        )
        receiver = self.pc.getTransceivers()[0].receiver
        if not self._stock_receive:
            tap_receiver(receiver, self._on_packet)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        if self._stock_receive:
            self._playout = asyncio.create_task(self._play_stock(receiver.track, sink))
        else:
            self._playout = asyncio.create_task(self._play(sink))

    async def _play_stock(self, track: MediaStreamTrack, sink: AudioSink) -> None:
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                assert isinstance(frame, av.AudioFrame)
                pcm = frame.to_ndarray().reshape(-1, 2).astype(np.float32) / 32768.0
                sink.write(pcm)
                if self.on_play is not None:
                    self.on_play(pcm, time.monotonic(), 0.0)
        except asyncio.CancelledError:
            sink.close()
            raise

    def _on_packet(self, seq: int, timestamp: int, payload: bytes) -> None:
        self._inbox.append((seq, timestamp, payload, time.monotonic()))

    async def _play(self, sink: AudioSink) -> None:
        next_tick = time.monotonic()
        ticks = 0
        try:
            while True:
                next_tick += FRAME / RATE
                ticks += 1
                due = self.jitter.next_due_s()
                if ticks % ALIGN_EVERY_TICKS == 0 and due is not None:
                    # Play each frame right after it is due, as the node mixes (phase.py).
                    next_tick += alignment_shift(next_tick, [due % (FRAME / RATE)], FRAME / RATE)
                delay = next_tick - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                inbox, self._inbox = self._inbox, []
                for seq, ts, data, arrival_s in inbox:
                    self.jitter.add(seq, ts, data, arrival_s)
                kind, payload = self.jitter.pop(time.monotonic())
                arrival = 0.0
                if kind == PopKind.PLAY and payload and self._decoder.decode(payload, self._frame):
                    arrival = self.jitter.last_arrival_s
                    self._last[:] = self._frame
                elif kind == PopKind.SILENT:
                    self._frame.fill(0.0)
                else:
                    self._frame[:] = self._last * 0.5
                    self._last[:] = self._frame
                frame = self._frame.reshape(FRAME, 2)
                sink.write(frame)
                if self.on_play is not None:
                    self.on_play(frame, time.monotonic(), arrival)
        except asyncio.CancelledError:
            sink.close()
            raise

    async def leave(self) -> None:
        """Leave the session (best effort)."""
        if self.token and self.session:
            with contextlib.suppress(ClientError):
                await self.request("POST", f"/api/sessions/{self.session['id']}/leave", auth=True)
            self.token = ""

    async def close(self) -> None:
        """Stop playing, close the connection and the HTTP client (idempotent)."""
        if self._playout is not None:
            self._playout.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._playout
            self._playout = None
        await self.leave()
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        if self._http is not None:
            await self._http.close()
            self._http = None
