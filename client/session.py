"""A native jamnet client: signs in with a keyfile, sends one audio source, plays its mix.

Used by ``jamnet jam`` and by tests and benchmarks. It shares the node's own jitter buffer
and Opus code, so its receive path has the same small, adaptive latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
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
from node.media.opus import LOOKAHEAD_MS
from node.media.peer import set_opus_params, set_ptime
from node.session.jitter import JitterBuffer, PopKind
from node.session.phase import ALIGN_EVERY_S, alignment_shift, ticks_per

FRAME = 960
"""Samples in a 20 ms frame (sessions may use 5 or 10 ms frames: ``frame_samples``)."""
RATE = 48000
F32 = npt.NDArray[np.float32]
LATE_SKIP_FRAMES = 2  # a paced loop further behind than this skips ahead instead of bursting


def frame_samples(frame_ms: float) -> int:
    """Samples per frame at 48 kHz."""
    return round(RATE * frame_ms / 1000)


class ClientError(JamnetError):
    """The node refused a request or could not be reached."""


# ------------------------------------------------------------------ sources
class AudioSource(Protocol):
    """Yields mono float32 audio, ``n`` samples per call."""

    def read(self, n: int = FRAME) -> F32:
        """The next ``n`` samples."""


class ArraySource:
    """Plays a mono float array, then silence (or loops)."""

    def __init__(self, samples: F32, loop: bool = False) -> None:
        self._samples = samples.astype(np.float32)
        self._pos = 0
        self._loop = loop

    def read(self, n: int = FRAME) -> F32:
        """Next ``n`` samples."""
        frame = np.zeros(n, dtype=np.float32)
        chunk = self._samples[self._pos : self._pos + n]
        frame[: chunk.shape[0]] = chunk
        self._pos += n
        if self._loop and self._samples.shape[0] and self._pos >= self._samples.shape[0]:
            self._pos %= self._samples.shape[0]
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
    """The default input device through sounddevice (PortAudio).

    Captured audio waits in a small ring; when the reader falls behind (a stall), the oldest
    audio is dropped so that at most ``backlog_ms`` waits: a stall costs a gap, never
    latency that stays."""

    def __init__(self, block_ms: float = 5.0, backlog_ms: float = 10.0) -> None:
        import sounddevice

        self._ring = np.zeros(RATE, dtype=np.float32)
        self._have = 0
        self._keep = frame_samples(backlog_ms)
        self._lock = threading.Lock()
        self.dropped = 0
        """Samples dropped because the reader fell behind."""
        self._stream = sounddevice.InputStream(
            samplerate=RATE,
            channels=1,
            dtype="float32",
            blocksize=frame_samples(block_ms),
            callback=lambda data, *_: self._captured(data[:, 0]),
        )
        self._stream.start()
        self.latency_ms = float(self._stream.latency) * 1000
        """The input device's own latency (PortAudio's figure)."""

    def _captured(self, samples: F32) -> None:
        with self._lock:
            n = samples.shape[0]
            if self._have + n > self._ring.shape[0]:
                self._have = 0
            self._ring[self._have : self._have + n] = samples
            self._have += n

    def read(self, n: int = FRAME) -> F32:
        """The newest ``n`` samples captured (older backlog beyond ``backlog_ms`` dropped)."""
        out = np.zeros(n, dtype=np.float32)
        with self._lock:
            excess = self._have - (n + self._keep)
            if excess > 0:
                self._ring[: self._have - excess] = self._ring[excess : self._have]
                self._have -= excess
                self.dropped += excess
            take = min(n, self._have)
            out[n - take :] = self._ring[:take]
            self._ring[: self._have - take] = self._ring[take : self._have]
            self._have -= take
        return out


# -------------------------------------------------------------------- sinks
class AudioSink(Protocol):
    """Receives stereo float32 frames (samples × 2)."""

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

    def __init__(self, block_ms: float = 5.0) -> None:
        import sounddevice

        self._stream = sounddevice.OutputStream(
            samplerate=RATE,
            channels=2,
            dtype="float32",
            blocksize=frame_samples(block_ms),
            latency="low",
        )
        self._stream.start()
        self.latency_ms = float(self._stream.latency) * 1000
        """The output device's own latency (PortAudio's figure)."""

    def write(self, frame: F32) -> None:
        """Queue one frame for the device."""
        self._stream.write(frame)

    def close(self) -> None:
        """Stop the device."""
        self._stream.stop()
        self._stream.close()


# -------------------------------------------------------------------- media
class SourceTrack(MediaStreamTrack):
    """Sends a source as mono Opus frames of ``frame_ms`` (our own libopus encoder: aiortc's
    is fixed at 20 ms), paced by the wall clock.

    When the client falls more than ``LATE_SKIP_FRAMES`` behind (a stall), the frames it
    missed are read and dropped and the RTP timestamp moves on by them: the node conceals a
    gap instead of receiving a burst of late packets that would raise its jitter buffer."""

    kind = "audio"

    def __init__(
        self,
        source: AudioSource,
        bitrate_bps: int = 96000,
        on_frame: Callable[[F32, float], None] | None = None,
        frame_ms: float = 20,
        application: str = "lowdelay",
    ) -> None:
        super().__init__()
        self._source = source
        self.frame_samples = frame_samples(frame_ms)
        self._period = self.frame_samples / RATE
        self._encoder = OpusEncoder(1, bitrate_bps, 5, frame_ms, application)
        self._next = 0.0
        self._on_frame = on_frame
        self._pending: list[EncodedPacket] = []
        self.input_latency_ms = float(getattr(source, "latency_ms", 0.0))
        """The input device's latency (0 for a file)."""
        self.skipped = 0
        """Frames not sent because the client fell behind."""

    async def recv(self) -> EncodedPacket:  # aiortc sends packets as they are
        """Next packet, one every frame."""
        while not self._pending:
            now = time.monotonic()
            if self._next == 0.0:
                self._next = now
            if self._next > now:
                await asyncio.sleep(self._next - now)
            elif now - self._next > LATE_SKIP_FRAMES * self._period:
                behind = int((now - self._next) / self._period)
                for _ in range(behind):
                    self._source.read(self.frame_samples)  # the source's time passes too
                self._encoder.skip(behind)
                self._next += behind * self._period
                self.skipped += behind
            self._next += self._period
            frame = self._source.read(self.frame_samples)
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
        self.frame_ms: float = 20
        """The session's frame size (known once joined)."""
        self.jitter = JitterBuffer()
        self.pc: RTCPeerConnection | None = None
        self.track: SourceTrack | None = None
        self._decoder = OpusFrameDecoder(FRAME, channels=2)
        self._frame = np.zeros(FRAME * 2, dtype=np.float32)
        self._last = np.zeros(FRAME * 2, dtype=np.float32)
        self.playout_skipped = 0
        """Playout ticks skipped because this client fell behind."""
        self._inbox: list[tuple[int, int, bytes, float]] = []
        self._playout: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = verify_tls
        self._stock_receive = stock_receive
        """Play what aiortc's own receive path delivers (the benchmark baseline)."""
        self.on_play: Callable[[F32, float, float], None] | None = None
        """Called with (frame, play time, arrival time of that frame) for each played frame."""
        self.watch_events = True
        """Follow the session's event socket once connected (figures, being removed)."""
        self.figures: dict[str, dict[str, Any]] = {}
        """The node's latest figures for each participant's stream (its ``levels`` event)."""
        self.ended = asyncio.Event()
        """Set when the node took us out, the session closed or the event socket went away."""
        self.end_reason = ""
        self.client_added_ms = 0.0
        """Smoothed time from a frame's arrival here to its playout."""
        self._events: asyncio.Task[None] | None = None
        self._sink: AudioSink | None = None

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
        self._use_frame(float(self.session.get("frame_ms", 20)))
        return joined

    def _use_frame(self, frame_ms: float) -> None:
        """Size the receive path for the session's frames."""
        self.frame_ms = frame_ms
        n = frame_samples(frame_ms)
        self.jitter = JitterBuffer(frame_samples=n)
        self._decoder = OpusFrameDecoder(n, channels=2)
        self._frame = np.zeros(n * 2, dtype=np.float32)
        self._last = np.zeros(n * 2, dtype=np.float32)

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
        self.track = SourceTrack(source, on_frame=on_send, frame_ms=self.frame_ms)
        self.pc.addTrack(self.track)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        ms = int(self.frame_ms)
        sdp = set_opus_params(
            set_ptime(self.pc.localDescription.sdp, ms),
            {"stereo": "1", "maxaveragebitrate": "128000", "minptime": str(ms)},
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
        self._sink = sink
        if self.watch_events:
            self._events = asyncio.create_task(self._watch_events())

    # -------------------------------------------------------------- events
    async def _watch_events(self) -> None:
        """Follow the session's event socket: the node's stream figures for the readout, and
        being removed, replaced or the session ending (``ended`` says why)."""
        assert self._http is not None
        url = self.node_url.replace("http", "ws", 1)
        path = f"{url}/api/sessions/{self.session['id']}/events?token={self.token}"
        try:
            async with self._http.ws_connect(path, ssl=self._ssl, heartbeat=20) as ws:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    event = json.loads(message.data)
                    kind = event.get("type")
                    if kind == "levels":
                        self.figures = event.get("jitter", {})
                    elif kind == "prove" and event.get("participant") == self.participant.get("id"):
                        await self._prove(str(event.get("message", "")))
                    elif kind == "left" and event.get("participant") == self.participant.get("id"):
                        reason = str(event.get("reason"))
                        if reason.startswith("replaced"):
                            self._end(
                                "another client joined this session with your key, so this one "
                                "was replaced (give a second musician on this machine their "
                                "own --keyfile)"
                            )
                        else:
                            self._end(f"the node took you out of the session: {reason}")
                    elif kind == "closed":
                        self._end("the session was closed")
                if not self.ended.is_set() and self.token:
                    self._end(f"the node closed the event socket ({ws.close_code})")
        except (aiohttp.ClientError, ValueError) as exc:
            self._end(f"lost the node's event socket: {exc}")

    async def _prove(self, message: str) -> None:
        """The hosting node of a bridged session asks us to prove our address: sign (only
        its bridge-proof text, nothing else) and hand the signature to our node."""
        if not message.startswith("jamnet bridge proof\n") or len(message) > 512:
            return
        signature = self.account.sign_message(encode_defunct(text=message)).signature
        with contextlib.suppress(ClientError):
            await self.request(
                "POST",
                f"/api/sessions/{self.session['id']}/proof",
                {"signature": "0x" + bytes(signature).hex()},
                auth=True,
            )

    def _end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    async def rtt_ms(self) -> float | None:
        """The network round trip to the node, from RTCP (None until measured)."""
        if self.pc is None:
            return None
        for sender in self.pc.getSenders():
            stats = await sender.getStats()
            for item in stats.values():
                rtt = getattr(item, "roundTripTime", None)
                if item.type == "remote-inbound-rtp" and rtt is not None:
                    return float(rtt) * 1000
        return None

    async def latency(self) -> dict[str, Any]:
        """An estimate of mouth-to-ear delay for what you hear, and its parts (ms).

        - capture: a frame's wait to be complete, plus the encoder's look-ahead (both ends
          encode alike), plus the input device's own latency;
        - network: the round trip (one way up from the other musician, one way down to you);
        - node: its jitter buffer and mixing for the streams you hear (their arrival to the
          mix's departure, as the node measures it) plus its encoder's look-ahead;
        - client: this client's jitter buffer, arrival to playout;
        - output: the output device's latency (0 for a file)."""
        me = self.participant.get("id")
        others = [f for pid, f in self.figures.items() if pid != me]
        node = sum(f.get("node_added_ms", 0.0) for f in others) / len(others) if others else 0.0
        lookahead = LOOKAHEAD_MS["lowdelay"]
        rtt = await self.rtt_ms()
        parts = {
            "capture": self.frame_ms + lookahead + getattr(self.track, "input_latency_ms", 0.0),
            "network": rtt if rtt is not None else 0.0,
            "node": node + lookahead,
            "client": self.client_added_ms,
            "output": float(getattr(self._sink, "latency_ms", 0.0)),
        }
        total = sum(parts.values())
        return {
            "total_ms": round(total, 1),
            "parts_ms": {k: round(v, 1) for k, v in parts.items()},
            "dominant": max(parts, key=lambda k: parts[k]),
            "rtt_measured": rtt is not None,
            "jitter_delay_ms": round(self.jitter.delay_s * 1000, 1),
        }

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
        n = frame_samples(self.frame_ms)
        period = n / RATE
        align_every = ticks_per(ALIGN_EVERY_S, period)
        next_tick = time.monotonic()
        ticks = concealing = 0
        conceal_limit = max(1, round(0.1 / period))
        try:
            while True:
                next_tick += period
                ticks += 1
                due = self.jitter.next_due_s()
                if ticks % align_every == 0 and due is not None:
                    # Play each frame right after it is due, as the node mixes (phase.py).
                    next_tick += alignment_shift(next_tick, [due % period], period)
                delay = next_tick - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif -delay > LATE_SKIP_FRAMES * period:
                    # Far behind (a stall): a sound card would have played on; so do we,
                    # and the jitter buffer drops what is now overdue.
                    behind = int(-delay / period)
                    next_tick += behind * period
                    self.playout_skipped += behind
                inbox, self._inbox = self._inbox, []
                for seq, ts, data, arrival_s in inbox:
                    self.jitter.add(seq, ts, data, arrival_s)
                # The frame of this tick's own slot, however late the tick runs (a stall
                # must not read as a moved schedule: a dropped frame, then a held one).
                kind, payload = self.jitter.pop(next_tick)
                arrival = 0.0
                if kind == PopKind.PLAY and payload and self._decoder.decode(payload, self._frame):
                    arrival = self.jitter.last_arrival_s
                    self._last[:] = self._frame
                    concealing = 0
                elif kind == PopKind.SILENT:
                    self._frame.fill(0.0)
                elif concealing < conceal_limit and self._decoder.conceal(self._frame):
                    concealing += 1  # Opus's own loss concealment, for up to 100 ms
                else:
                    self._frame[:] = self._last * 0.5
                    self._last[:] = self._frame
                frame = self._frame.reshape(n, 2)
                sink.write(frame)
                played = time.monotonic()
                if arrival:
                    added = (played - arrival) * 1000
                    self.client_added_ms += (added - self.client_added_ms) * 0.05
                if self.on_play is not None:
                    self.on_play(frame, played, arrival)
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
        if self._events is not None:
            self._events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._events
            self._events = None
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
