"""`jamnet works tree` and `jamnet licences …`: derivative families and licences from the
terminal.

A sealed bid's value and salt are what reveal it, and a bid that is not revealed is forfeited:
`jamnet licences bid` keeps them in ``bids.json`` next to your keyfile (and prints them), and
`jamnet licences reveal` reads them from there.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from web3.logs import DISCARD

from client.chain_commands import _address, _client, table
from client.http import call
from node.chain.client import ChainClient, format_amount, parse_amount
from node.chain.licences import (
    USAGES,
    commitment,
    licence_view,
    new_salt,
    parse_term_days,
    parse_territory,
    parse_usage,
)
from node.errors import InputError


def _logs(client: ChainClient, contract: Any, event: str, **filters: Any) -> list[Any]:
    """Every ``event`` of ``contract`` since the deployment (filtered on indexed arguments)."""
    return list(
        getattr(contract.events, event)().get_logs(
            from_block=client.deployment.block, argument_filters=filters or None
        )
    )


def _licensing(client: ChainClient) -> Any:
    if "Licensing" not in client.contracts:
        raise InputError("this deployment has no Licensing contract (deployed before licences)")
    return client.contracts["Licensing"]


def _now(client: ChainClient) -> int:
    return int(client.w3.eth.get_block("latest")["timestamp"])


# ------------------------------------------------------------------ family trees


def works_tree(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    works = client.works
    parents, ancestors, shares, own = works.functions.lineage(args.id).call()
    sent: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    received: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    token = client.token.address
    for log in _logs(client, works, "RoyaltyForwarded", workId=args.id):
        sent[int(log["args"]["ancestorId"])][log["args"]["token"] == token] += log["args"]["amount"]
    for log in _logs(client, works, "RoyaltyForwarded", ancestorId=args.id):
        received[int(log["args"]["workId"])][log["args"]["token"] == token] += log["args"]["amount"]
    children = sorted(
        int(log["args"]["workId"])
        for log in _logs(client, works, "DerivativeRegistered")
        if args.id in log["args"]["parents"]
    )
    print(f"work {args.id}: takes {own / 100:g} % of every payment to a derivative of it")
    if not ancestors:
        print("  no parents: an original work")
    else:
        print(f"  parents: {', '.join(str(p) for p in parents)}")
        print(f"  royalty stack: {sum(shares) / 100:g} % of its income goes up, as follows")
        rows = [
            [
                str(a),
                "parent" if a in parents else "ancestor",
                f"{s / 100:g} %",
                format_amount(sent[a][0]),
                format_amount(sent[a][1]),
            ]
            for a, s in zip(ancestors, shares, strict=True)
        ]
        print(table(rows, ["work", "relation", "share", "sent ETH", "sent JAM"]))
    if children:
        print(f"  derivatives of it: {', '.join(str(c) for c in children)}")
    if received:
        print("  received from descendants:")
        rows = [
            [str(w), format_amount(v[0]), format_amount(v[1])] for w, v in sorted(received.items())
        ]
        print(table(rows, ["from work", "ETH", "JAM"]))
    return 0


# ------------------------------------------------------------------ fixed-price licences


def licences_offer(args: argparse.Namespace) -> int:
    client = _client(args)
    licensing = _licensing(client)
    usage, days = parse_usage(args.usage), parse_term_days(args.days)
    price = parse_amount(args.price)
    receipt = client.send(
        licensing.functions.offer(args.work, usage, days, parse_territory(args.territory), price),
        what="offer",
    )
    terms = licensing.events.TermsOffered().process_receipt(receipt, errors=DISCARD)[0]["args"]
    print(
        f"terms {terms['termsId']}: {USAGES[usage]} licence of work {args.work} for {days} days"
        f" in {args.territory.upper()}, {args.price} ETH"
    )
    return 0


def licences_list(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    licensing = _licensing(client)
    rows = []
    for log in _logs(client, licensing, "TermsOffered", workId=args.work):
        terms_id = int(log["args"]["termsId"])
        _, price, days, usage, territory, active = licensing.functions.terms(terms_id).call()
        rows.append(
            [
                str(terms_id),
                USAGES[usage],
                f"{days} d",
                bytes(territory).decode("ascii", "replace"),
                f"{format_amount(price)} ETH",
                "on sale" if active else "withdrawn",
            ]
        )
    if not rows:
        print(f"work {args.work} has no licence terms on offer")
    else:
        print(table(rows, ["terms", "usage", "term", "territory", "price", "state"]))
    for log in _logs(client, licensing, "AuctionCreated", workId=args.work):
        auction = licensing.functions.auction(int(log["args"]["auctionId"])).call()
        print(_auction_line(int(log["args"]["auctionId"]), auction, _now(client)))
    return 0


def licences_buy(args: argparse.Namespace) -> int:
    client = _client(args)
    licensing = _licensing(client)
    work, price, _, usage, _, _ = licensing.functions.terms(args.terms).call()
    licensee = _address(args.licensee) if args.licensee else client.address
    receipt = client.send(licensing.functions.buy(args.terms, licensee), value=price, what="buy")
    issued = licensing.events.LicenceIssued().process_receipt(receipt, errors=DISCARD)[0]["args"]
    print(
        f"licence {issued['licenceId']}: {USAGES[usage]} use of work {work} for {licensee},"
        f" {format_amount(price)} ETH paid into the work's split"
        f" (check it: jamnet licences verify {issued['licenceId']})"
    )
    return 0


def licences_verify(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    record, valid = _licensing(client).functions.verify(args.licence).call()
    view = licence_view(record, valid, args.licence, now=_now(client))
    if args.json:
        print(json.dumps(view))
    else:
        print(
            table(
                [[k, str(v)] for k, v in view.items() if k != "priceWei"]
                + [["price", f"{format_amount(view['priceWei'])} ETH"]]
            )
        )
    return 0 if view["valid"] else 1


# ------------------------------------------------------------------ exclusive auctions


def _auction_line(auction_id: int, a: Any, now: int) -> str:
    work, _, usage, _, days, commit_end, reveal_end, settled, bids, revealed = a[:10]
    if settled:
        phase = "settled"
    elif now < commit_end:
        phase = f"bidding for {max(0, commit_end - now) // 60} more min"
    elif now < reveal_end:
        phase = f"revealing for {max(0, reveal_end - now) // 60} more min"
    else:
        phase = "ended: anyone may settle it"
    return (
        f"auction {auction_id}: exclusive {USAGES[usage]} licence of work {work} for {days} d,"
        f" reserve {format_amount(a[12])} ETH, {bids} bids, {revealed} revealed, {phase}"
    )


def _bids_file(args: argparse.Namespace) -> Path:
    return Path(args.keyfile).with_name("bids.json")


def _load_bids(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except ValueError:
        raise InputError(
            f"{path} is not valid JSON: fix or move it (it holds your bids' salts)"
        ) from None


def licences_auction(args: argparse.Namespace) -> int:
    client = _client(args)
    licensing = _licensing(client)
    now = _now(client)
    commit_end = now + int(args.commit_hours * 3600)
    reveal_end = commit_end + int(args.reveal_hours * 3600)
    receipt = client.send(
        licensing.functions.createAuction(
            args.work,
            parse_usage(args.usage),
            parse_term_days(args.days),
            parse_territory(args.territory),
            parse_amount(args.reserve),
            commit_end,
            reveal_end,
        ),
        what="auction",
    )
    created = licensing.events.AuctionCreated().process_receipt(receipt, errors=DISCARD)[0]["args"]
    print(
        _auction_line(
            created["auctionId"], licensing.functions.auction(created["auctionId"]).call(), now
        )
    )
    return 0


def licences_status(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    licensing = _licensing(client)
    a = licensing.functions.auction(args.auction).call()
    print(_auction_line(args.auction, a, _now(client)))
    if a[7]:
        for log in _logs(client, licensing, "AuctionSettled", auctionId=args.auction):
            s = log["args"]
            winner = s["winner"] if int(s["winner"], 16) else "nobody (no valid bid)"
            print(
                f"  winner {winner} paid {format_amount(s['price'])} ETH;"
                f" {format_amount(s['forfeited'])} ETH of unrevealed deposits went to the work"
            )
    return 0


def licences_bid(args: argparse.Namespace) -> int:
    client = _client(args)
    licensing = _licensing(client)
    value = parse_amount(args.amount)
    deposit = parse_amount(args.deposit) if args.deposit else value
    if deposit < value:
        raise InputError(
            "the deposit must be at least the bid (a bid counts for at most its deposit)"
        )
    salt = new_salt()
    sealed = commitment(args.auction, client.address, value, salt)
    path = _bids_file(args)
    bids = _load_bids(path)
    key = f"{client.deployment.chain_id}:{licensing.address}:{args.auction}:{client.address}"
    bids[key] = {"value": str(value), "salt": "0x" + salt.hex()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(bids, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)  # saved before the commitment is sent: a crash cannot lose the salt
    client.send(licensing.functions.commit(args.auction, sealed), value=deposit, what="bid")
    print(
        f"sealed bid on auction {args.auction}: {args.amount} ETH with a deposit of"
        f" {format_amount(deposit)} ETH; value and salt 0x{salt.hex()} kept in {path}"
        f" — reveal it with `jamnet licences reveal {args.auction}` once bidding closes"
    )
    return 0


def licences_reveal(args: argparse.Namespace) -> int:
    client = _client(args)
    licensing = _licensing(client)
    key = f"{client.deployment.chain_id}:{licensing.address}:{args.auction}:{client.address}"
    if args.salt and args.amount:
        value, salt = parse_amount(args.amount), bytes.fromhex(args.salt.removeprefix("0x"))
    else:
        saved = _load_bids(_bids_file(args)).get(key)
        if saved is None:
            raise InputError(
                f"no saved bid for auction {args.auction} from {client.address}:"
                " give --amount and --salt"
            )
        value, salt = int(saved["value"]), bytes.fromhex(saved["salt"][2:])
    client.send(licensing.functions.reveal(args.auction, value, salt), what="reveal")
    print(f"revealed {format_amount(value)} ETH on auction {args.auction}")
    return 0


def licences_settle(args: argparse.Namespace) -> int:
    client = _client(args)
    licensing = _licensing(client)
    receipt = client.send(licensing.functions.settle(args.auction), what="settle")
    s = licensing.events.AuctionSettled().process_receipt(receipt, errors=DISCARD)[0]["args"]
    if int(s["winner"], 16):
        issued = licensing.events.LicenceIssued().process_receipt(receipt, errors=DISCARD)[0][
            "args"
        ]
        print(
            f"auction {args.auction}: {s['winner']} won licence {issued['licenceId']} at the"
            f" second price, {format_amount(s['price'])} ETH"
        )
    else:
        print(f"auction {args.auction}: no valid bid; nothing sold")
    if s["forfeited"]:
        print(
            f"  {format_amount(s['forfeited'])} ETH of unrevealed deposits went to the work's"
            " contributors"
        )
    return 0


def licences_refund(args: argparse.Namespace) -> int:
    client = _client(args)
    licensing = _licensing(client)
    owed = licensing.functions.refundOf(client.address).call()
    if owed == 0:
        print(f"nothing to refund to {client.address}")
        return 0
    to = _address(args.to) if args.to else client.address
    client.send(licensing.functions.withdrawRefunds(to), what="refund")
    print(f"withdrew {format_amount(owed)} ETH of refunds to {to}")
    return 0


# ------------------------------------------------------------------ operators' rewards


def _rewards(client: ChainClient) -> Any:
    if "NodeRewards" not in client.contracts:
        raise InputError("this deployment has no NodeRewards contract (deployed before rewards)")
    return client.contracts["NodeRewards"]


def _entry_state(entry: Any, now: int, dispute_end: int) -> str:
    _weight, disputed, voided, claimed = entry
    if voided:
        return "voided by governance"
    if claimed:
        return "withdrawn"
    if disputed:
        return "disputed: waiting for governance"
    if now < dispute_end:
        return f"claimable in {(dispute_end - now) / 3600:.1f} h"
    return "claimable now"


def operator_earnings(args: argparse.Namespace) -> int:
    client = _client(args, signer=False)
    rewards = _rewards(client)
    node = _address(args.address) if args.address else client.address
    now = _now(client)
    current = rewards.functions.currentPeriod().call()
    formula, report_window, dispute_window, period_s, _ = rewards.functions.parameters().call()
    pot = rewards.functions.period(current).call()
    print(
        f"period {current} (each {period_s / 3600:g} h): pot so far {format_amount(pot[0])} ETH,"
        f" {format_amount(pot[1])} JAM; nodes report within {report_window / 3600:g} h after a"
        f" period ends, disputes within {dispute_window / 3600:g} h more"
    )
    print(
        "quality = 10000 − {}·concealed bps − {}·(added ms − {}) − {}·overrun bps;"
        " weight = musician-minutes × quality".format(*formula)
    )
    rows = []
    for log in _logs(client, rewards, "Reported", node=node):
        period = int(log["args"]["periodId"])
        entry, eth, jam = rewards.functions.entry(period, node).call()
        _, _, dispute_end = rewards.functions.periodTimes(period).call()
        total = rewards.functions.period(period).call()[2]
        if entry[3]:
            for claim in _logs(client, rewards, "RewardClaimed", periodId=period, node=node):
                eth, jam = claim["args"]["eth"], claim["args"]["token"]
        rows.append(
            [
                str(period),
                str(log["args"]["soloMinutes"] + log["args"]["sharedMinutes"]),
                str(log["args"]["sharedMinutes"]),
                f"{log['args']['quality'] / 100:g} %",
                f"{100 * entry[0] / total:.1f} %" if total else "-",
                format_amount(eth),
                format_amount(jam),
                _entry_state(entry, now, dispute_end),
            ]
        )
    if not rows:
        print(f"{node} has reported no period yet")
        return 0
    header = ["period", "minutes", "countersigned", "quality", "of weight", "ETH", "JAM", "state"]
    print(table(rows, header))
    return 0


def operator_claim(args: argparse.Namespace) -> int:
    client = _client(args)
    rewards = _rewards(client)
    to = _address(args.to) if args.to else client.address
    receipt = client.send(rewards.functions.claim(args.period, to), what="claim")
    claimed = rewards.events.RewardClaimed().process_receipt(receipt, errors=DISCARD)[0]["args"]
    print(
        f"withdrew period {args.period}'s reward to {to}: {format_amount(claimed['eth'])} ETH,"
        f" {format_amount(claimed['token'])} JAM"
    )
    return 0


def operator_served(args: argparse.Namespace) -> int:
    """What the node meters per period and where its reports stand (the node's own view)."""
    shown = json.loads(call(args.node, "/api/chain/rewards"))["this_node"]
    if shown is None:
        print(f"{args.node} does not take part in operators' rewards (chain.rewards is off)")
        return 0
    if not shown["metering"]:
        print(f"{args.node} is not metering yet: {shown['error'] or 'waiting for the chain'}")
        return 0
    print(
        f"period {shown['current_period']} now; this node countersigned"
        f" {shown['answered']['countersigned']} peer reports and refused"
        f" {shown['answered']['refused']} since it started"
    )
    rows = []
    for p in shown["periods"]:
        m, report = p["metered"], p["report"] or {}
        shared = sum(m["shared_minutes"].values())
        seen = sum(m["seen_minutes"].values())
        cosigns = report.get("countersigned_by", [])
        signed = ", ".join(f"{c['node'][:10]}… {c['minutes']}" for c in cosigns)
        rows.append(
            [
                str(p["period"]),
                f"{m['solo_minutes']:.1f}",
                f"{shared:.1f}",
                f"{seen:.1f}",
                f"{m['concealed_bps'] / 100:.2f} %",
                f"{m['added_ms']} ms",
                f"{m['overrun_bps'] / 100:.2f} %",
                report.get("state", "open" if p["period"] == shown["current_period"] else "-"),
                signed or "-",
                report.get("note") or "",
            ]
        )
    if not rows:
        print("nothing served yet")
        return 0
    header = ["period", "solo min", "shared min", "peers' min seen", "concealed", "added",
              "overruns", "report", "countersigned by", "note"]  # fmt: skip
    print(table(rows, header))
    return 0
