"""`jamnet recordings start|stop|list|verify …`: takes and their signed contribution records.

``verify`` checks a record's EIP-712 signature here, on this machine (``node.records``): the
node that served it is not trusted to say it is valid.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from client.http import add_node_flag, call
from node.errors import InputError


def add_commands(sub: Any) -> None:
    """Register ``recordings`` under the top-level parser."""
    group = sub.add_parser("recordings", help="takes and their contribution records")
    actions = group.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="a session's recordings and who contributed")
    listing.add_argument("session", help="session id")
    add_node_flag(listing)
    listing.set_defaults(func=_list)
    home_key = str(Path(os.environ.get("HOME", ".")) / ".jamnet" / "key.json")
    for name, text in (("start", "session owner: start recording"), ("stop", "stop recording")):
        command = actions.add_parser(name, help=text)
        command.add_argument("session", help="session id")
        add_node_flag(command)
        command.add_argument("--keyfile", default=home_key, help="the owner's key")
        command.set_defaults(func=_control, action_name=name)
    verify = actions.add_parser(
        "verify", help="check a take's signed contribution record (here, not on the node)"
    )
    verify.add_argument("what", help="a recording id (fetched from --node) or a record's JSON file")
    add_node_flag(verify)
    verify.set_defaults(func=_verify)


def _get(node: str, path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(call(node, path))
    return data


def _control(args: argparse.Namespace) -> int:
    """Start or stop a session's recording as its owner (a signed challenge: no need to be
    in the session from this terminal)."""
    from eth_account.messages import encode_defunct

    from node.keys import load_or_create_key

    account = load_or_create_key(Path(args.keyfile))
    body = json.dumps({"address": account.address}).encode()
    issued = json.loads(call(args.node, "/api/challenges", body))
    signature = account.sign_message(encode_defunct(text=issued["message"])).signature
    request = {
        "action": args.action_name,
        "address": account.address,
        "nonce": issued["nonce"],
        "signature": "0x" + bytes(signature).hex(),
    }
    reply = json.loads(
        call(args.node, f"/api/sessions/{args.session}/recording", json.dumps(request).encode())
    )
    if args.action_name == "start":
        print(f"recording {reply['recording']}")
    else:
        seconds = reply["frames"] * reply["frame_samples"] / 48000
        sealed = "sealed" if reply.get("record") else "not sealed yet"
        print(f"stopped {reply['id']}: {seconds:.1f} s, {sealed}")
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = _get(args.node, f"/api/sessions/{args.session}/recordings")["recordings"]
    if not rows:
        print("no recordings")
    for row in rows:
        seconds = row["frames"] * row["frame_samples"] / 48000
        sealed = "sealed" if row.get("sealed") else "not sealed yet"
        print(f"{row['id']}  {row['state']}  {seconds:.1f} s  {sealed}")
        for c in row["contributions"]:
            print(f"    {c['address']}  {c['name']:<16} active {c['active_s']:.1f} s")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from node import records

    path = Path(args.what)
    if path.is_file():
        try:
            sealed = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a JSON record ({exc})") from None
    else:
        sealed = _get(args.node, f"/api/recordings/{args.what}").get("record")
        if sealed is None:
            raise InputError(f"recording {args.what} has no contribution record yet")
    signer = records.verify(sealed)
    record = sealed["record"]
    print(f"valid: recording {record['recordingId']} signed by {signer}")
    print(f"mix keccak-256 {record['mixHash']}")
    for c in record["contributors"]:
        share = c["levelShareBps"] / 100
        active = c["activeMs"] / 1000
        print(
            f"    {c['account']}  active {active:.1f} s  level {share:.2f} %  stem {c['stemHash']}"
        )
    return 0
