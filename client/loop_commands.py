"""`jamnet works draft|split|consent|list|earnings|listen` and `jamnet royalties …`: a take
becomes a work, plays become receipts, periods become payouts (against a node's API).

Everything that is signed is signed here, with your keyfile, after the command has shown
what it signs; the node is not trusted to sign for anyone.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from eth_account.messages import encode_defunct, encode_typed_data
from web3 import Web3

from client.http import call
from node.chain.client import format_amount, parse_amount
from node.errors import InputError
from node.keys import load_or_create_key


def _get(node: str, path: str, source: str | None = None) -> Any:
    return json.loads(call(node, path, source=source))


def _send(
    node: str, path: str, body: dict[str, Any], method: str = "POST", source: str | None = None
) -> Any:
    return json.loads(call(node, path, json.dumps(body).encode(), method=method, source=source))


def _both(eth: object, jam: object) -> str:
    return f"{format_amount(int(str(eth)))} ETH, {format_amount(int(str(jam)))} JAM"


def _key(args: argparse.Namespace) -> Any:
    return load_or_create_key(Path(args.keyfile))


def _show_draft(draft: dict[str, Any]) -> None:
    print(f"take {draft['recording_id']}: {draft['state']}", end="")
    print(f", work {draft['work_id']}" if draft.get("work_id") is not None else "")
    print(f"content {draft['content_hash']}")
    print(f"uri     {draft['uri']}")
    for entry in draft["split"]:
        mark = "consented" if entry["consented"] else "waiting for consent"
        print(f"    {entry['address']}  {entry['bps'] / 100:6.2f} %  {mark}")
    if draft.get("parents"):
        print(
            f"derived from work(s) {', '.join(str(w) for w in draft['parents'])}:"
            " each takes its share"
        )
    if draft.get("derivative_bps"):
        print(f"takes {draft['derivative_bps'] / 100:g} % of every payment to a derivative of it")
    copied = draft.get("similarity")
    if copied:
        verdict = (
            "registration waits until the owner names it as a parent (jamnet works parents)"
            if copied["gated"]
            else "flagged: name it as a parent if it is one"
        )
        print(
            f"similar: {copied['span_notes']} notes in a row shared with work {copied['work']};"
            f" {verdict}"
        )
    if draft.get("error"):
        print(f"error: {draft['error']}")


def works_parents(args: argparse.Namespace) -> int:
    from node.works import parents_message

    account = _key(args)
    at = int(time.time())
    parents = sorted(set(args.parents))
    text = parents_message(args.recording, parents, args.derivative_bps, at)
    signature = account.sign_message(encode_defunct(text=text))
    body = {
        "parents": parents,
        "derivative_bps": args.derivative_bps,
        "signed_at": at,
        "signature": "0x" + bytes(signature.signature).hex(),
    }
    _show_draft(_send(args.node, f"/api/recordings/{args.recording}/work/parents", body, "PUT"))
    return 0


def works_draft(args: argparse.Namespace) -> int:
    _show_draft(_get(args.node, f"/api/recordings/{args.recording}/work"))
    return 0


def works_split(args: argparse.Namespace) -> int:
    from node.works import split_message

    who, shares = [], []
    for item in args.split:
        address, _, bps = item.rpartition(":")
        if not address or not bps.isascii() or not bps.isdecimal():
            raise InputError(f"a split entry is ADDRESS:BASIS_POINTS, got {item!r}")
        who.append(address)
        shares.append(int(bps))
    account = _key(args)
    at = int(time.time())
    who = [Web3.to_checksum_address(a) if Web3.is_address(a) else a for a in who]
    signature = account.sign_message(
        encode_defunct(text=split_message(args.recording, who, shares, at))
    )
    body = {
        "split": [{"address": a, "bps": s} for a, s in zip(who, shares, strict=True)],
        "signed_at": at,
        "signature": "0x" + bytes(signature.signature).hex(),
    }
    _show_draft(_send(args.node, f"/api/recordings/{args.recording}/work/split", body, "PUT"))
    return 0


def works_consent(args: argparse.Namespace) -> int:
    account = _key(args)
    draft = _get(args.node, f"/api/recordings/{args.recording}/work")
    mine = [e for e in draft["split"] if e["address"] == account.address]
    if not mine:
        raise InputError(f"{account.address} is not in the split of take {args.recording}")
    typed = draft["typed_data"]
    message = typed["message"]
    # What is signed, checked against what the draft says (a node cannot slip in another).
    expected = ([e["address"] for e in draft["split"]], [e["bps"] for e in draft["split"]])
    if (message["contributors"], message["shares"]) != expected:
        raise InputError("the node's typed data does not match the split it shows: not signing")
    deadline = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(message["deadline"])))
    print(
        f"consenting to {mine[0]['bps'] / 100:g} % of {draft['content_hash']}, registered by"
        f" {message['registrant']} before {deadline} UTC"
    )
    parents = [int(p) for p in message.get("parents", [])]
    if parents != draft.get("parents", []):
        raise InputError("the node's typed data does not match the parents it shows: not signing")
    if parents:
        print(
            f"  as a derivative of work(s) {', '.join(map(str, parents))}, which take their shares"
        )
    signable = dict(
        message, deadline=int(message["deadline"]), nonce=int(message["nonce"]), parents=parents
    )
    signed = account.sign_message(encode_typed_data(full_message={**typed, "message": signable}))
    body = {"address": account.address, "signature": "0x" + bytes(signed.signature).hex()}
    _show_draft(_send(args.node, f"/api/recordings/{args.recording}/work/consents", body))
    return 0


def works_list(args: argparse.Namespace) -> int:
    rows = _get(args.node, "/api/works")["works"]
    if not rows:
        print("no works from this node's takes yet")
    for row in rows:
        work = f"work {row['work_id']}" if row["work_id"] is not None else "not registered"
        consented = sum(1 for e in row["split"] if e["consented"])
        print(
            f"{row['recording_id']}  {row['state']:<10} {work:<14}"
            f" consents {consented}/{len(row['split'])}  plays {row['plays']}"
        )
    return 0


def works_earnings(args: argparse.Namespace) -> int:
    who = args.address or _key(args).address
    periods = _get(args.node, "/api/royalties")["periods"]
    works = {
        row["work_id"]: row
        for row in _get(args.node, "/api/works")["works"]
        if row["work_id"] is not None
    }
    print(f"earnings of {who} from this node's works")
    for work_id, row in sorted(works.items()):
        share = next((e["bps"] for e in row["split"] if e["address"] == who), 0)
        if not share:
            continue
        detail = _get(args.node, f"/api/chain/works/{work_id}")
        mine = next(c for c in detail["contributors"] if c["address"] == who)
        received = _both(detail["received_eth"], detail["received_jam"])
        owed = _both(mine["owed_eth"], mine["owed_jam"])
        print(f"work {work_id} ({share / 100:g} %): received {received}; you may withdraw {owed}")
        for period in periods:
            payout = next(
                (p for p in (period["rollup"] or {}).get("payouts", []) if p["work_id"] == work_id),
                None,
            )
            if payout is not None:
                plays = period["rollup"]["plays"].get(str(work_id), 0)
                yours = _both(
                    int(payout["eth"]) * share // 10000, int(payout["token"]) * share // 10000
                )
                print(
                    f"    period {period['id']} ({period['state']}): {plays} plays, the work got"
                    f" {_both(payout['eth'], payout['token'])}; yours before the protocol fee"
                    f" {yours}"
                )
    return 0


def works_listen(args: argparse.Namespace) -> int:
    """Play a work for ``--seconds`` (streamed in range requests), then sign the receipt."""
    account = _key(args)
    play = _send(
        args.node, f"/api/works/{args.id}/plays", {"listener": account.address}, source=args.source
    )
    started = time.monotonic()
    url = args.node.rstrip("/") + play["stream"]
    size = _stream(url, args.seconds, started)
    played_ms = int((time.monotonic() - started) * 1000)
    typed = play["typed_data"]
    message = dict(typed["message"], playedMs=played_ms)
    signed = account.sign_message(encode_typed_data(full_message={**typed, "message": message}))
    body = {"played_ms": played_ms, "signature": "0x" + bytes(signed.signature).hex()}
    result = _send(args.node, f"/api/plays/{play['play_id']}/receipt", body, source=args.source)
    print(
        f"played work {args.id} for {played_ms / 1000:.1f} s ({size} bytes):"
        f" counted in period {result['period']}"
    )
    return 0


def _stream(url: str, seconds: float, started: float) -> int:
    """Fetch the stream in 64 KiB ranges, paced over ``seconds`` (as a player buffers)."""
    offset, chunk, total = 0, 65536, None
    while time.monotonic() - started < seconds:
        if total is None or offset < total:
            request = urllib.request.Request(  # noqa: S310 - the user's node
                url, headers={"Range": f"bytes={offset}-{offset + chunk - 1}"}
            )
            with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
                data = reply.read()
                span = reply.headers.get("Content-Range", "")
                total = int(span.rpartition("/")[2]) if "/" in span else len(data)
            offset += len(data)
        time.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - started))))
    return offset


def royalties_status(args: argparse.Namespace) -> int:
    state = _get(args.node, "/api/royalties")
    pool = state["pool"]
    print(
        f"pool {pool['address']}: unallocated {format_amount(int(pool['unallocated_eth']))} ETH,"
        f" {format_amount(int(pool['unallocated_jam']))} JAM; open period {state['current']}"
    )
    for period in state["periods"]:
        line = f"period {period['id']}: {period['state']}"
        rollup = period.get("rollup")
        if rollup:
            paid = _both(rollup["paid"]["eth"], rollup["paid"]["token"])
            line += (
                f", {rollup['receipts']} plays, paid {paid}, dust"
                f" {rollup['dust']['eth']} wei ETH / {rollup['dust']['token']} wei JAM"
            )
        elif period.get("receipts") is not None:
            line += f", {period['receipts']} plays so far"
        if period.get("error"):
            line += f" ({period['error']})"
        print(line)
    return 0


def royalties_close(args: argparse.Namespace) -> int:
    from node.api.works import close_message

    account = _key(args)
    period = int(_get(args.node, "/api/royalties")["current"])
    at = int(time.time())
    signature = account.sign_message(encode_defunct(text=close_message(period, at)))
    body = {"period": period, "signed_at": at, "signature": "0x" + bytes(signature.signature).hex()}
    closed = _send(args.node, "/api/royalties/close", body)
    print(f"period {closed['id']} closed: the roll-up and settlement run on the node")
    if args.wait:
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            state = next(
                p for p in _get(args.node, "/api/royalties")["periods"] if p["id"] == period
            )
            if state["state"] in {"settled", "failed"}:
                print(
                    f"period {period}: {state['state']}"
                    + (f" ({state['error']})" if state.get("error") else "")
                )
                return 0 if state["state"] == "settled" else 1
            time.sleep(1.0)
        print(f"period {period} is still settling after {args.wait:g} s")
        return 1
    return 0


def royalties_fund(args: argparse.Namespace) -> int:
    from client.chain_commands import _client

    client = _client(args)
    amount = parse_amount(args.amount)
    pool = client.contracts["RoyaltyPool"]
    if args.jam:
        client.send(client.token.functions.approve(pool.address, amount), what="approve")
        client.send(pool.functions.fundToken(amount), what="fund")
    else:
        client.send(pool.functions.fund(), value=amount, what="fund")
    print(f"funded the royalty pool with {args.amount} {'JAM' if args.jam else 'ETH'}")
    return 0
