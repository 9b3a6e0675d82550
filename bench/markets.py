"""Gas and speed of the markets: derivative payments by depth, licences, sealed-bid auctions,
and the similarity check.

On a fresh anvil devnet with the contracts deployed as the node deploys them:
- ``pay_gas_by_depth``: a payment (ETH) to a work with 0, 1, 2 and 3 ancestors, each taking a
  share; the median of 5 payments after a first one (which pays for first writes to the
  ancestors' totals, reported as ``pay_gas_first_by_depth``);
- ``licence_buy_gas``: buying fixed-price licence terms (median of 5);
- ``auction_*_gas`` at 3 and 30 bidders: commit and reveal (medians over the bidders, bids in
  random order) and the one settlement;
- ``rewards_report_gas`` with 0, 1 and 8 countersignatures: a node's NodeRewards report for
  a period (each countersignature is an EIP-712 signature checked on chain), not the period's
  first (``rewards_first_report_gas``, which also writes the period's formula), and
  ``rewards_claim_gas``;
- ``similarity_query_ms_p50``: checking one melody against 1,000 registered works' melodies
  (node/similarity.py), median of 50 queries, with its ratio to an index of 100 works built in
  the same process (``similarity_1000_over_100``).

Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.chain.consent import Registration, provenance_message
from node.chain.deploy import JAM, deploy
from node.chain.devnet import Devnet
from node.chain.licences import commitment, new_salt, parse_territory
from node.chain.rewards import Served, countersign

Account.enable_unaudited_hdwallet_features()
ATTESTER = Account.from_mnemonic(
    "test test test test test test test test test test test junk", account_path="m/44'/60'/0'/0/8"
)
ETH = 10**18


def _send(w3: Web3, call: Any, sender: str, value: int = 0) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "value": value}))
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction failed: {receipt}")
    return receipt


def _gas(w3: Web3, call: Any, sender: str, value: int = 0) -> int:
    return int(_send(w3, call, sender, value)["gasUsed"])


def _advance(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _register(w3: Web3, works: Any, registrant: str, name: str, parents: tuple[int, ...]) -> int:
    content = bytes(Web3.keccak(text=name))
    nonce = int(works.functions.workCount().call()) + 1
    reg = Registration(
        content,
        f"ipfs://{name}",
        [registrant],
        [10000],
        2**40,
        nonce,
        ATTESTER.address,
        parents,
        500,
    )
    signed = ATTESTER.sign_message(
        provenance_message(w3.eth.chain_id, works.address, content, [registrant])
    )
    receipt = _send(
        w3, works.functions.register(reg.as_tuple(), [b""], bytes(signed.signature)), registrant
    )
    return int(
        works.events.WorkRegistered().process_receipt(receipt, errors=DISCARD)[0]["args"]["workId"]
    )


def _auction(
    w3: Web3, c: dict[str, Any], seller: str, bidders: list[str], work: int
) -> dict[str, int]:
    licensing = c["Licensing"]
    now = int(w3.eth.get_block("latest")["timestamp"])
    receipt = _send(
        w3,
        licensing.functions.createAuction(
            work, 2, 365, parse_territory("WW"), ETH // 100, now + 3600, now + 7200
        ),
        seller,
    )
    auction = int(
        licensing.events.AuctionCreated().process_receipt(receipt, errors=DISCARD)[0]["args"][
            "auctionId"
        ]
    )
    rng = random.Random(len(bidders))
    bids = {who: (rng.randrange(ETH // 100, ETH), new_salt()) for who in bidders}
    commits = [
        _gas(
            w3,
            licensing.functions.commit(auction, commitment(auction, who, value, salt)),
            who,
            value=ETH,
        )
        for who, (value, salt) in bids.items()
    ]
    _advance(w3, 3600)
    order = list(bids)
    rng.shuffle(order)
    reveals = [_gas(w3, licensing.functions.reveal(auction, *bids[who]), who) for who in order]
    _advance(w3, 3600)
    return {
        "commit": int(statistics.median(commits)),
        "reveal": int(statistics.median(reveals)),
        "settle": _gas(w3, licensing.functions.settle(auction), seller),
    }


def chain_figures() -> dict[str, Any]:
    result: dict[str, Any] = {}
    with Devnet() as devnet:
        w3 = Web3(Web3.HTTPProvider(devnet.url))
        accounts = list(w3.eth.accounts)
        deployment = deploy(w3, accounts[0], accounts[1:])
        c = deployment.contracts(w3)
        works, token, nodes, licensing = (
            c["WorkRegistry"],
            c["JamToken"],
            c["NodeRegistry"],
            c["Licensing"],
        )
        _send(w3, token.functions.approve(nodes.address, 10_000 * JAM), ATTESTER.address)
        _send(w3, nodes.functions.stake(10_000 * JAM), ATTESTER.address)
        _send(w3, nodes.functions.register("12D3KooWAttester", "http://a", "{}"), ATTESTER.address)
        alice, payer = accounts[1], accounts[2]
        print("[markets] derivative payments …", file=sys.stderr)
        chain_of: list[int] = []
        first: dict[str, int] = {}
        steady: dict[str, int] = {}
        for depth in range(4):
            work = _register(w3, works, alice, f"depth-{depth}", tuple(chain_of[-1:]))
            chain_of.append(work)
            first[str(depth)] = _gas(w3, works.functions.pay(work), payer, value=ETH)
            steady[str(depth)] = int(
                statistics.median(
                    _gas(w3, works.functions.pay(work), payer, value=ETH) for _ in range(5)
                )
            )
        result["pay_gas_by_depth"] = steady
        result["pay_gas_first_by_depth"] = first
        result["pay_gas_depth3_over_depth0"] = round(steady["3"] / steady["0"], 3)
        print("[markets] licences …", file=sys.stderr)
        receipt = _send(
            w3,
            licensing.functions.offer(chain_of[0], 0, 30, parse_territory("WW"), ETH // 10),
            alice,
        )
        terms = int(
            licensing.events.TermsOffered().process_receipt(receipt, errors=DISCARD)[0]["args"][
                "termsId"
            ]
        )
        buys = [
            _gas(w3, licensing.functions.buy(terms, payer), payer, value=ETH // 10)
            for _ in range(6)
        ]
        result["licence_buy_gas"] = int(statistics.median(buys[1:]))
        print("[markets] auctions …", file=sys.stderr)
        for count in (3, 30):
            bidders = []
            for _ in range(count):
                account = Account.create()
                w3.provider.make_request("anvil_impersonateAccount", [account.address])  # type: ignore[arg-type]
                w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * ETH)])  # type: ignore[arg-type]
                bidders.append(account.address)
            work = _register(w3, works, alice, f"auctioned-{count}", ())
            gas = _auction(w3, c, alice, bidders, work)
            for step, value in gas.items():
                result.setdefault(f"auction_{step}_gas", {})[str(count)] = value
        print("[markets] operators' reports …", file=sys.stderr)
        result.update(_rewards_gas(w3, c, deployment.params["min_stake"], payer))
    return result


def _rewards_gas(w3: Web3, c: dict[str, Any], stake: int, funder: str) -> dict[str, Any]:
    """Reports with 0, 1 and 8 countersignatures (three reporters, eight cosigning nodes)."""
    nodes, token, rewards = c["NodeRegistry"], c["JamToken"], c["NodeRewards"]
    keys = [Account.create() for _ in range(4 + 8)]
    for i, key in enumerate(keys):
        me = key.address
        w3.provider.make_request("anvil_setBalance", [me, hex(10 * ETH)])  # type: ignore[arg-type]
        w3.provider.make_request("anvil_impersonateAccount", [me])  # type: ignore[arg-type]
        _send(w3, token.functions.transfer(me, stake), w3.eth.accounts[3])  # a genesis holder
        _send(w3, token.functions.approve(nodes.address, stake), me)
        _send(w3, nodes.functions.stake(stake), me)
        _send(w3, nodes.functions.register(f"12D3KooWBench{i}", f"http://n{i}", "{}"), me)
    period = int(rewards.functions.currentPeriod().call())
    _send(w3, rewards.functions.fund(), funder, value=ETH)
    ends, _, dispute_end = rewards.functions.periodTimes(period).call()
    now = int(w3.eth.get_block("latest")["timestamp"])
    _advance(w3, int(ends) - now + 1)
    reporters, cosigners = keys[:4], keys[4:]
    report: dict[str, int] = {}
    # The period's first report also fixes its formula and its first total (fresh storage).
    first = _gas(
        w3, rewards.functions.report(period, Served(60, 0, 0, 0, 0).as_tuple(), []), keys[0].address
    )
    for reporter, count in zip(reporters[1:], (0, 1, 8), strict=True):
        served = Served(600, 30 * count, 20, 6, 5)
        cosigns = [
            (
                node.address,
                30,
                countersign(
                    node, w3.eth.chain_id, rewards.address, period, reporter.address, 30, 30.0,
                    served,
                ),
            )
            for node in cosigners[:count]
        ]  # fmt: skip
        call = rewards.functions.report(period, served.as_tuple(), cosigns)
        report[str(count)] = _gas(w3, call, reporter.address)
    _advance(w3, int(dispute_end) - int(w3.eth.get_block("latest")["timestamp"]) + 1)
    claim = _gas(w3, rewards.functions.claim(period, reporters[1].address), reporters[1].address)
    return {
        "rewards_report_gas": report,
        "rewards_first_report_gas": first,
        "rewards_claim_gas": claim,
    }


def similarity_figures(queries: int = 50, runs: int = 5) -> dict[str, Any]:
    """Median query time over ``runs`` rounds of ``queries`` (each round: fresh indexes of
    100 and 1 000 works, the same probes against both), and the steal seen meanwhile."""
    from bench.machine import StealMeter
    from node.similarity import MelodyIndex, synthetic_melodies

    steal = StealMeter()
    rng = random.Random(20261202)
    rounds: dict[int, list[float]] = {100: [], 1000: []}
    for _ in range(runs):
        probes = synthetic_melodies(queries, rng)
        for size in (100, 1000):
            index = MelodyIndex()
            for work, melody in enumerate(synthetic_melodies(size, rng)):
                index.add(work, melody)
            times = []
            for melody in probes:
                start = time.perf_counter()
                index.query(melody)
                times.append((time.perf_counter() - start) * 1000)
            rounds[size].append(statistics.median(times))
    p50 = {size: statistics.median(values) for size, values in rounds.items()}
    return {
        "similarity_query_ms_p50": round(p50[1000], 3),
        "similarity_query_ms_p50_runs": [round(v, 3) for v in rounds[1000]],
        "similarity_query_ms_p50_at_100": round(p50[100], 3),
        "similarity_1000_over_100": round(p50[1000] / p50[100], 2),
        "similarity_steal_percent": steal.percent(),
    }


def threshold_study(per_collection: int) -> dict[str, Any]:
    """The longest shared span between every pair of different real tunes (music21's bundled
    O'Neill's and Essen collections): what a threshold must stay above."""
    from node.similarity import FLAG_SPAN_NOTES, GATE_SPAN_NOTES, MelodyIndex
    from training.corpus import PieceError, extract, list_units

    melodies: list[tuple[str, list[int]]] = []
    titles: list[str] = []
    for unit in list_units(["oneills", "essen"], per_collection):
        try:
            piece = extract(unit)
        except PieceError:
            continue
        melodies.append((unit.piece_id, [n.pitch for n in piece.melody if n.pitch is not None]))
        title = re.search(r"^T:(.*)$", unit.source, re.M) if unit.is_abc else None
        titles.append(title.group(1).strip().lower() if title else unit.piece_id)
    index = MelodyIndex()
    for work, (_, pitches) in enumerate(melodies):
        index.add(work, pitches)
    pairs = len(melodies) * (len(melodies) - 1) // 2
    longest: dict[tuple[int, int], int] = {}
    for work, (_, pitches) in enumerate(melodies):
        for match in index.query(pitches, exclude=[work], limit=len(melodies)):
            key = (min(work, match.work), max(work, match.work))
            longest[key] = max(longest.get(key, 0), match.span_notes)
    spans = sorted(longest.values())
    spans = [0] * (pairs - len(spans)) + spans  # pairs sharing no n-gram at all

    def quantile(q: float) -> int:
        return spans[min(len(spans) - 1, int(q * len(spans)))]

    flagged = [
        (melodies[a][0], melodies[b][0], s) for (a, b), s in longest.items() if s >= FLAG_SPAN_NOTES
    ]
    by_threshold = {}
    for t in range(8, 25, 2):
        above = [(a, b) for (a, b), s in longest.items() if s >= t]
        same = sum(titles[a] == titles[b] for a, b in above)
        by_threshold[str(t)] = {"pairs": len(above), "same_title": same}
    return {
        "tunes": len(melodies),
        "pairs": pairs,
        "span_p50": quantile(0.5),
        "span_p99": quantile(0.99),
        "span_p999": quantile(0.999),
        "span_max": spans[-1],
        "flag_threshold": FLAG_SPAN_NOTES,
        "gate_threshold": GATE_SPAN_NOTES,
        "pairs_at_or_above_threshold": len(flagged),
        "pairs_at_or_above_by_threshold": by_threshold,
        "examples_at_or_above": sorted(flagged, key=lambda f: -f[2])[:12],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-chain", action="store_true", help="only the similarity check")
    parser.add_argument(
        "--threshold",
        type=int,
        metavar="N",
        default=0,
        help="also study the copy threshold on N real tunes per corpus collection",
    )
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if args.threshold:
        print("[markets] threshold study on the corpus …", file=sys.stderr)
        result["threshold_study"] = threshold_study(args.threshold)
    if not args.skip_chain:
        result.update(chain_figures())
    print("[markets] similarity …", file=sys.stderr)
    result.update(similarity_figures())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
