"""`jamnet token|works|operator|gov …`: the contracts from the terminal.

The chain and the contract addresses come from a node (``--node``, its ``/api/chain``) or
from ``--rpc-url`` + ``--deployment``; transactions are signed with your keyfile (the same
one ``jamnet jam`` uses). On a devnet, ``jamnet token faucet`` gets a new key some ETH for
gas and a little JAM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from node.chain.client import ChainClient, format_amount, parse_amount
from node.chain.deploy import Deployment
from node.errors import ChainError, InputError
from node.keys import load_or_create_key

STATES = ["Pending", "Active", "Canceled", "Defeated", "Succeeded", "Queued", "Expired", "Executed"]
SUPPORT = {"against": 0, "for": 1, "abstain": 2}


def table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """Columns aligned to their widest cell."""
    body = ([header] if header else []) + rows
    widths = [max(len(row[i]) for row in body) for i in range(len(body[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in body
    ]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _client(args: argparse.Namespace, signer: bool = True) -> ChainClient:
    account = (
        load_or_create_key(Path(args.keyfile)) if signer or Path(args.keyfile).exists() else None
    )
    if args.rpc_url:
        if not args.deployment:
            raise InputError("--rpc-url needs --deployment FILE")
        return ChainClient(args.rpc_url, Deployment.load(Path(args.deployment)), account)
    return ChainClient.for_node(args.node, account)


def _address(text: str) -> str:
    if not Web3.is_address(text):
        raise InputError(f"{text!r} is not an Ethereum address")
    return str(Web3.to_checksum_address(text))


def _content_hash(text: str) -> bytes:
    """A 0x… 32-byte hash, or a file whose keccak-256 is taken."""
    if text.startswith("0x") and len(text) == 66:
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise InputError(f"{text!r} is not a hex hash") from None
    path = Path(text)
    if not path.is_file():
        raise InputError(f"content {text!r} is neither a 0x… 32-byte hash nor a file")
    return bytes(Web3.keccak(path.read_bytes()))


def _split(items: list[str], me: str) -> tuple[list[str], list[int]]:
    if not items:
        return [me], [10_000]
    who, shares = [], []
    for item in items:
        address, _, bps = item.rpartition(":")
        if not address or not bps.isascii() or not bps.isdecimal():
            raise InputError(f"--split wants ADDRESS:BASIS_POINTS, got {item!r}")
        who.append(_address(address))
        shares.append(int(bps))
    if sum(shares) != 10_000:
        raise InputError(f"shares add up to {sum(shares)} basis points, not 10000")
    return who, shares


# ----------------------------------------------------------------- token
def keys_import(args: argparse.Namespace) -> int:
    """A private key from standard input into a new keystore (password JAMNET_KEY_PASSWORD)."""
    account = load_or_create_key(Path(args.keyfile), private_key=sys.stdin.readline())
    print(f"{args.keyfile}: the key of {account.address}")
    return 0


def token_balance(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    who = _address(args.address) if args.address else client.address
    token = client.token
    rows = [
        ["address", who],
        ["JAM", format_amount(token.functions.balanceOf(who).call())],
        ["ETH", format_amount(client.w3.eth.get_balance(Web3.to_checksum_address(who)))],
        ["votes", format_amount(token.functions.getVotes(who).call())],
        ["delegate", token.functions.delegates(who).call()],
    ]
    print(table(rows))
    return 0


def token_transfer(args: argparse.Namespace) -> int:
    client = _client(args)
    amount = parse_amount(args.amount)
    client.send(client.token.functions.transfer(_address(args.to), amount), what="transfer")
    print(f"sent {args.amount} JAM to {args.to}")
    return 0


def token_faucet(args: argparse.Namespace) -> int:
    account = load_or_create_key(Path(args.keyfile))
    body = json.dumps({"address": account.address}).encode()
    url = args.node.rstrip("/") + "/api/faucet"
    if not url.startswith(("http://", "https://")):
        raise InputError("--node must be an http(s) URL")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - scheme checked
            result = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        raise ChainError(f"faucet refused: {json.loads(exc.read()).get('error', exc)}") from None
    except OSError as exc:
        raise ChainError(f"cannot reach the faucet at {url}: {exc}") from None
    print(f"faucet sent {result['eth']} ETH and {result['jam']} JAM to {account.address}")
    return 0


# ------------------------------------------------------------------ works
def works_show(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    content, uri, registrant, who, shares, total_eth, total_jam = client.works.functions.work(
        args.id
    ).call()
    print(
        table(
            [
                ["content", "0x" + content.hex()],
                ["metadata", uri],
                ["registrant", registrant],
                [
                    "received",
                    f"{format_amount(total_eth)} ETH, {format_amount(total_jam)} JAM (after fees)",
                ],
            ]
        )
    )
    rows = [
        [
            a,
            f"{s / 100:g} %",
            format_amount(client.works.functions.owedEth(args.id, a).call()),
            format_amount(client.works.functions.owedToken(args.id, a).call()),
        ]
        for a, s in zip(who, shares, strict=True)
    ]
    print()
    print(table(rows, ["contributor", "share", "owed ETH", "owed JAM"]))
    return 0


def works_pay(args: argparse.Namespace) -> int:
    client = _client(args)
    amount = parse_amount(args.amount)
    if args.jam:
        client.send(client.token.functions.approve(client.works.address, amount), what="approve")
        client.send(client.works.functions.payToken(args.id, amount), what="pay")
    else:
        client.send(client.works.functions.pay(args.id), value=amount, what="pay")
    print(f"paid work {args.id} {args.amount} {'JAM' if args.jam else 'ETH'}")
    return 0


def works_balance(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    who = _address(args.address) if args.address else client.address
    eth = client.works.functions.owedEth(args.id, who).call()
    jam = client.works.functions.owedToken(args.id, who).call()
    print(f"work {args.id} owes {who}: {format_amount(eth)} ETH, {format_amount(jam)} JAM")
    return 0


def works_withdraw(args: argparse.Namespace) -> int:
    client = _client(args)
    to = _address(args.to) if args.to else client.address
    functions = client.works.functions
    call = (functions.withdrawTokenTo if args.jam else functions.withdrawTo)(args.id, to)
    receipt = client.send(call, what="withdraw")
    amount = client.works.events.Withdrawn().process_receipt(receipt, errors=DISCARD)[0]["args"][
        "amount"
    ]
    asset = "JAM" if args.jam else "ETH"
    print(f"withdrew {format_amount(amount)} {asset} from work {args.id} to {to}")
    return 0


# --------------------------------------------------------------- operator
def operator_stake(args: argparse.Namespace) -> int:
    client = _client(args)
    amount = parse_amount(args.amount)
    client.send(client.token.functions.approve(client.nodes.address, amount), what="approve")
    client.send(client.nodes.functions.stake(amount), what="stake")
    print(f"staked {args.amount} JAM")
    return 0


def operator_register(args: argparse.Namespace) -> int:
    client = _client(args)
    client.send(
        client.nodes.functions.register(args.peer_id, args.endpoint, args.metadata), what="register"
    )
    print(f"registered node {args.peer_id} at {args.endpoint}")
    return 0


def operator_status(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    who = _address(args.address) if args.address else client.address
    staked, unbonding, unlock, registered, peer, endpoint, metadata = (
        client.nodes.functions.operator(who).call()
    )
    minimum, delay = client.nodes.functions.parameters().call()
    rows = [
        ["operator", who],
        ["staked", f"{format_amount(staked)} JAM (minimum {format_amount(minimum)})"],
        [
            "unbonding",
            f"{format_amount(unbonding)} JAM" + (f", unlocks at {unlock}" if unbonding else ""),
        ],
        ["registered", "yes" if registered else "no"],
        ["peer id", peer or "-"],
        ["endpoint", endpoint or "-"],
        ["metadata", metadata or "-"],
        ["unbond delay", f"{delay} s"],
    ]
    print(table(rows))
    return 0


def operator_unbond(args: argparse.Namespace) -> int:
    client = _client(args)
    client.send(client.nodes.functions.unbond(), what="unbond")
    print("unbonding: your node left the registry; withdraw after the delay")
    return 0


def operator_withdraw(args: argparse.Namespace) -> int:
    client = _client(args)
    client.send(client.nodes.functions.withdraw(), what="withdraw")
    print("withdrew your unbonded stake")
    return 0


# -------------------------------------------------------------------- gov
def _proposals(client: ChainClient) -> list[dict[str, Any]]:
    """ProposalCreated arguments: from the node's event index, or the chain's logs directly
    when talking to an external RPC without a node."""
    if client.node_url:
        url = (
            client.node_url.rstrip("/")
            + "/api/chain/events?contract=JamGovernor&name=ProposalCreated&limit=1000"
        )
        with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 - http(s) checked
            events = json.loads(reply.read())["events"]
        result = []
        for event in reversed(events):  # oldest first, like the logs
            args = dict(event["args"])
            args["proposalId"] = int(args["proposalId"])
            args["values"] = [int(v) for v in args["values"]]
            args["calldatas"] = [bytes.fromhex(d[2:]) for d in args["calldatas"]]
            result.append(args)
        return result
    logs = client.governor.events.ProposalCreated().get_logs(from_block=client.deployment.block)
    return [dict(e["args"]) for e in logs]


def _find(client: ChainClient, proposal_id: str) -> dict[str, Any]:
    """A proposal by its id, or a unique prefix of it (at least 6 digits, as `gov list` shows)."""
    text = proposal_id.rstrip("…")
    if len(text) < 6 or not text.isascii() or not text.isdecimal():
        raise InputError(
            f"proposal id {proposal_id!r} must be at least 6 digits (see `jamnet gov list`)"
        )
    found = [p for p in _proposals(client) if str(p["proposalId"]).startswith(text)]
    if not found:
        raise InputError(f"no proposal {proposal_id!r} (see `jamnet gov list`)")
    if len(found) > 1:
        raise InputError(f"{proposal_id!r} matches {len(found)} proposals; give more digits")
    return found[0]


def gov_delegate(args: argparse.Namespace) -> int:
    client = _client(args)
    to = _address(args.to) if args.to else client.address
    client.send(client.token.functions.delegate(to), what="delegate")
    print(f"your votes now count for {to} (for proposals from the chain's next block)")
    return 0


def gov_propose(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.fee_bps is not None:
        call = client.works.functions.setProtocolFee(args.fee_bps)
        target, default = client.works.address, f"Set the protocol fee to {args.fee_bps / 100:g} %"
    elif args.min_stake is not None:
        call = client.nodes.functions.setParameters(
            parse_amount(args.min_stake), args.unbond_delay_s
        )
        target, default = (
            client.nodes.address,
            f"Minimum stake {args.min_stake} JAM, unbonding {args.unbond_delay_s} s",
        )
    else:
        raise InputError("say what to change: --fee-bps N or --min-stake JAM --unbond-delay-s S")
    description = args.description or default
    calldata = call._encode_transaction_data()
    existing = client.governor.functions.hashProposal(
        [target], [0], [calldata], Web3.keccak(text=description)
    ).call()
    if client.governor.functions.proposalSnapshot(existing).call():
        state = STATES[client.governor.functions.state(existing).call()]
        raise InputError(
            f"the same proposal exists already ({state}): jamnet gov show {existing}; "
            "a new one needs another --description"
        )
    _wait_for_votes(client)
    receipt = client.send(
        client.governor.functions.propose([target], [0], [calldata], description),
        what="propose",
    )
    proposal = client.governor.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)[0][
        "args"
    ]["proposalId"]
    print(f"proposal {proposal} created: {description}")
    return 0


def _wait_for_votes(client: ChainClient, timeout_s: float = 30.0) -> None:
    """Votes delegated just now count from the next second the chain knows (the governor
    reads them one second in the past): wait for that block rather than fail."""
    me = client.address
    threshold = client.governor.functions.proposalThreshold().call()
    if client.token.functions.getVotes(me).call() < threshold:
        return  # not enough votes at all: let the contract say so
    deadline = time.monotonic() + timeout_s
    while True:
        now = int(client.w3.eth.get_block("latest")["timestamp"])
        if client.token.functions.getPastVotes(me, now - 1).call() >= threshold:
            return
        if time.monotonic() > deadline:
            raise ChainError(
                "your votes have not started to count yet: the chain mined no block since you "
                "delegated (a devnet without --block-time mines only on transactions)"
            )
        time.sleep(1.0)


def gov_list(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    rows = []
    for p in _proposals(client):
        state = STATES[client.governor.functions.state(p["proposalId"]).call()]
        against, for_, abstain = client.governor.functions.proposalVotes(p["proposalId"]).call()
        rows.append(
            [
                str(p["proposalId"])[:12] + "…",
                state,
                format_amount(for_),
                format_amount(against),
                format_amount(abstain),
                p["description"][:50],
            ]
        )
    print(
        table(rows, ["id", "state", "for", "against", "abstain", "description"])
        if rows
        else "no proposals yet"
    )
    return 0


def jam(units: int) -> str:
    """Base units → "1,234.5 JAM"."""
    whole, _, fraction = format_amount(units).partition(".")
    return f"{int(whole):,}{'.' + fraction if fraction else ''} JAM"


def _when(at: int, now: int) -> str:
    """A unix time as UTC, and how far from now."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    delta = at - now
    if abs(delta) < 1:
        return f"{stamp} (now)"
    span = _span(abs(delta))
    return f"{stamp} (in {span})" if delta > 0 else f"{stamp} ({span} ago)"


def _span(seconds: int) -> str:
    """12 s, 5 min, 1.5 h, 3 d."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{seconds} s"


def gov_show(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    p = _find(client, args.id)
    pid = p["proposalId"]
    governor = client.governor.functions
    against, for_, abstain = governor.proposalVotes(pid).call()
    snapshot = governor.proposalSnapshot(pid).call()
    now = int(client.w3.eth.get_block("latest")["timestamp"])
    state = STATES[governor.state(pid).call()]
    # The quorum is read at the snapshot; before it, at the latest second the chain knows.
    quorum = governor.quorum(min(snapshot, now - 1)).call()
    rows = [
        ["id", str(pid)],
        ["state", state],
        ["proposer", p["proposer"]],
        ["description", p["description"]],
        ["votes for", jam(for_)],
        ["votes against", jam(against)],
        ["abstentions", jam(abstain)],
        ["quorum", f"{jam(quorum)} (4 % of the supply)"],
        ["voting opens", _when(int(p["voteStart"]), now)],
        ["voting closes", _when(int(p["voteEnd"]), now)],
    ]
    eta = governor.proposalEta(pid).call()
    if eta:
        rows.append(["executable", _when(int(eta), now)])
    print(table(rows))
    return 0


def gov_vote(args: argparse.Namespace) -> int:
    client = _client(args)
    pid = _find(client, args.id)["proposalId"]
    client.send(
        client.governor.functions.castVoteWithReason(pid, SUPPORT[args.support], args.reason or ""),
        what="vote",
    )
    print(f"voted {args.support} on {pid}")
    return 0


def _lifecycle(args: argparse.Namespace, action: str) -> int:
    client = _client(args)
    p = _find(client, args.id)
    digest = Web3.keccak(text=p["description"])
    call = getattr(client.governor.functions, action)(
        p["targets"], p["values"], p["calldatas"], digest
    )
    client.send(call, what=action)
    print(
        f"{action}d proposal {p['proposalId']}"
        if action == "execute"
        else f"queued proposal {p['proposalId']}"
    )
    return 0


def gov_queue(args: argparse.Namespace) -> int:
    """Queue a passed proposal."""
    return _lifecycle(args, "queue")


def gov_execute(args: argparse.Namespace) -> int:
    """Execute a queued proposal."""
    return _lifecycle(args, "execute")
