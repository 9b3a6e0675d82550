"""`jamnet compose` and `jamnet improvise`: the node's models from the terminal.

jamnet compose --seed "C4:4 D4:4 E4:4 G4:4" --key C --notes 32 -o continuation.mid
jamnet compose --seed-midi idea.mid -o continuation.mid
jamnet compose --seed-work 3 --session ab12 --token … -o remix.mid   (a derivative of work 3)
jamnet improvise --chords "C G Am F" --key C --density 0.5 -o solo.mid
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from client.http import add_node_flag, call


def _post(node: str, path: str, data: bytes, content_type: str, insecure: bool) -> bytes:
    return call(node, path, data, content_type, insecure)


def _post_json(args: argparse.Namespace, path: str, body: dict[str, Any]) -> bytes:
    """POST ``body`` plus the options both commands share; returns the MIDI reply."""
    full = {**body, "key": args.key, "tempo_bpm": args.tempo}
    if args.random_seed is not None:
        full["random_seed"] = args.random_seed
    return _post(args.node, path, json.dumps(full).encode(), "application/json", args.insecure)


def _write(out: str, midi: bytes) -> int:
    Path(out).write_bytes(midi)
    print(f"wrote {out} ({len(midi)} bytes)")
    return 0


def compose(args: argparse.Namespace) -> int:
    """Continue a seed melody on the node; write the continuation as MIDI; say when the model
    ended the piece before the notes asked for."""
    options: dict[str, Any] = {"notes": args.notes, "temperature": args.temperature}
    if args.time_signature:
        options["time_signature"] = args.time_signature
    if args.pickup:
        options["pickup_beats"] = args.pickup
    if args.session:
        options["session"] = args.session
    if args.seed_midi:
        data = Path(args.seed_midi).read_bytes()
        query = {**options, "key": args.key, "tempo_bpm": args.tempo}
        if args.random_seed is not None:
            query["random_seed"] = args.random_seed
        path = "/api/ai/compose?format=json&" + urllib.parse.urlencode(query)
        reply = _post(args.node, path, data, "audio/midi", args.insecure)
    elif args.seed_work is not None:
        path = "/api/ai/compose?format=json"
        if args.token:
            path += "&" + urllib.parse.urlencode({"token": args.token})
        reply = _post_json(args, path, {"seed_work": args.seed_work, **options})
    else:
        reply = _post_json(args, "/api/ai/compose?format=json", {"seed": args.seed, **options})
    made = json.loads(reply)
    code = _write(args.output, base64.b64decode(made["midi_base64"]))
    if made.get("seed_work") is not None:
        where = (
            f"session {args.session}'s takes will name it as a parent"
            if args.session
            else "a take that plays it should name it as a parent (--session marks one)"
        )
        print(f"seeded from work {made['seed_work']}: {where}")
    if made.get("ended_early"):
        print(f"note: {made['why']}", file=sys.stderr)
    return code


def improvise(args: argparse.Namespace) -> int:
    """Bars over a chord progression from the node's improviser, as MIDI."""
    body = {"chords": args.chords, "density": args.density}
    return _write(args.output, _post_json(args, "/api/ai/improvise?format=midi", body))


def add_commands(sub: Any) -> None:
    """Register compose and improvise under the top-level parser."""
    for name, func, help_text in (
        ("compose", compose, "continue a melody with the node's LSTM composer (MIDI out)"),
        ("improvise", improvise, "bars over a chord progression from the node's GAN (MIDI out)"),
    ):
        parser = sub.add_parser(name, help=help_text)
        add_node_flag(parser)
        parser.add_argument("--key", default="C", help='key, e.g. "C", "F#m" (default C)')
        parser.add_argument("--tempo", type=float, default=120.0, help="tempo of the MIDI file")
        parser.add_argument("--random-seed", type=int, help="repeatable sampling")
        parser.add_argument("-o", "--output", required=True, help="MIDI file to write")
        parser.add_argument("--insecure", action="store_true", help="accept a self-signed node")
        if name == "compose":
            seed = parser.add_mutually_exclusive_group(required=True)
            seed.add_argument("--seed", help='notes like "C4:4 D4:4 E4:8" (length in 16ths)')
            seed.add_argument("--seed-midi", help="a MIDI file whose top voice is the seed")
            seed.add_argument(
                "--seed-work", type=int, help="a registered work's opening (makes a derivative)"
            )
            parser.add_argument(
                "--token",
                default=os.environ.get("JAMNET_TOKEN"),
                help="your participant token in --session (to mark it derived from --seed-work)",
            )
            parser.add_argument("--notes", type=int, default=32, help="notes to add (1-256)")
            parser.add_argument("--temperature", type=float, default=1.0, help="0.1-3.0")
            parser.add_argument(
                "--time-signature",
                help="the seed's metre, e.g. \"6/8\" (default: --session's, the MIDI's, 4/4)",
            )
            parser.add_argument(
                "--pickup", type=float, default=0.0, help="beats before the first barline"
            )
            parser.add_argument("--session", help="take the metre of this session")
        else:
            parser.add_argument("--chords", required=True, help='one per bar: "C G Am F"')
            parser.add_argument("--density", type=float, default=0.4, help="0 sparse .. 1 busy")
        parser.set_defaults(func=func)
