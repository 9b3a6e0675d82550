"""``jamnet jam``: join a session from the terminal with a mic or a file."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

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
            session_id = (await client.create_session(args.session))["id"]
            print(f"created session {session_id}", flush=True)
        joined = await client.join(session_id, args.invite)
        print(f"joined {joined['session']['name']!r} as {account.address}", flush=True)
        await client.control(type="pose", x=args.x, y=args.y, yaw_deg=args.yaw, pitch_deg=0.0)
        await client.control(type="render", binaural=args.binaural, room=args.room)
        if args.click:
            await client.control(type="click", on=True)
        if args.monitor:
            await client.control(type="monitor", on=True)
        freeze()  # one full collector pass now, none over the imports while we play
        await client.connect(source, sink)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
    print("left the session", file=sys.stderr)
    return 0
