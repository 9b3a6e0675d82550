"""``jamnet jam``: join a session from the terminal with a mic or a file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from client.session import (
    ArraySink,
    AudioSink,
    AudioSource,
    ClientError,
    JamClient,
    MicSource,
    SpeakerSink,
    wav_source,
)
from node.heap import freeze
from node.keys import load_or_create_key
from node.media import priority


def _source(spec: str, loop: bool) -> AudioSource:
    if spec == "mic":
        try:
            return MicSource()
        except Exception as exc:  # PortAudio missing or no device
            raise ClientError(f"no microphone available ({exc}); use --input FILE.wav") from None
    return wav_source(Path(spec), loop)


def _sink(spec: str) -> AudioSink:
    if spec == "speaker":
        try:
            return SpeakerSink()
        except Exception as exc:
            raise ClientError(f"no sound output available ({exc}); use --output FILE.wav") from None
    return ArraySink(Path(spec))


async def jam(args: argparse.Namespace) -> int:
    """Join (or create and join) a session and play until Ctrl-C or --duration."""
    account = load_or_create_key(Path(args.keyfile))
    source = _source(args.input, args.loop)
    sink = _sink(args.output)
    async with JamClient(args.node, account, args.name, verify_tls=not args.insecure) as client:
        session_id = args.session
        if args.create:
            settings = {"frame_ms": args.frame_ms} if args.frame_ms else {}
            created = await client.create_session(args.session, **settings)
            session_id = created["id"]
            print(f"created session {session_id} ({created['frame_ms']} ms frames)", flush=True)
        joined = await client.join(session_id, args.invite)
        print(f"joined {joined['session']['name']!r} as {account.address}", flush=True)
        await client.control(type="pose", x=args.x, y=args.y, yaw_deg=args.yaw, pitch_deg=0.0)
        await client.control(type="render", binaural=args.binaural, room=args.room)
        if args.click:
            await client.control(type="click", on=True)
        if args.monitor:
            await client.control(type="monitor", on=True)
        freeze()  # one full collector pass now, none over the imports while we play
        # This thread sends and plays every packet: raised, as the node's loop is; what it
        # hands off is not (node.media.priority). Sound-card threads start from here.
        loop = asyncio.get_running_loop()
        priority.raise_this_thread(args.nice, "jamnet jam's audio loop", "or pass --nice 0")
        priority.hand_off_at_normal(loop)
        await client.connect(source, sink)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        readout = None if args.quiet else asyncio.create_task(_readout(client))
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(client.ended.wait())]
        try:
            await asyncio.wait(waits, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*waits, *([readout] if readout else [])]:
                task.cancel()
        if client.ended.is_set():
            print(f"jamnet jam: {client.end_reason}", file=sys.stderr)
            return 3
    print("left the session", file=sys.stderr)
    return 0


def format_latency(figures: dict[str, Any]) -> str:
    """One line: the estimate, its parts, and which part dominates."""
    parts = figures["parts_ms"]
    inner = ", ".join(f"{name} {value:.1f}" for name, value in parts.items())
    rtt = "" if figures["rtt_measured"] else " (network not measured yet)"
    return (
        f"latency ≈ {figures['total_ms']:.0f} ms mouth to ear: {inner} ms; "
        f"{figures['dominant']} dominates{rtt}"
    )


async def _readout(client: JamClient) -> None:
    """Print the latency estimate once a second (stderr)."""
    while True:
        await asyncio.sleep(1.0)
        print(format_latency(await client.latency()), file=sys.stderr, flush=True)
