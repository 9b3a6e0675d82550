"""Read-only views of the contracts, shared by the JSON API (and shaped for it).

Plain synchronous functions over bound contracts; the API runs them in a worker thread.
Amounts are returned as decimal strings of base units (JSON numbers cannot hold them).
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.contract import Contract

from node.chain import bindings
from node.chain.licences import USAGES
from node.errors import InputError, NotFoundError

PROPOSAL_STATES = [
    "pending", "active", "canceled", "defeated", "succeeded", "queued", "expired", "executed",
]  # fmt: skip


def checked_address(text: str) -> str:
    """A checksummed address, or an InputError."""
    if not isinstance(text, str) or not Web3.is_address(text):
        raise InputError(f"{text!r} is not an Ethereum address")
    return str(Web3.to_checksum_address(text))


def account(w3: Web3, c: dict[str, Contract], address: str) -> dict[str, Any]:
    """JAM, ETH, votes and delegate of an address."""
    who = checked_address(address)
    token = c["JamToken"]
    return {
        "address": who,
        "jam": str(token.functions.balanceOf(who).call()),
        "eth": str(w3.eth.get_balance(Web3.to_checksum_address(who))),
        "votes": str(token.functions.getVotes(who).call()),
        "delegate": token.functions.delegates(who).call(),
    }


def work(
    c: dict[str, Contract],
    work_id: int,
    forwarded: list[dict[str, Any]] | None = None,
    offered: list[dict[str, Any]] | None = None,
    auctions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A work, its split and what each contributor is owed; its family (parents, ancestors
    with their shares and what it sent each, from the indexed ``RoyaltyForwarded`` events)
    and its licence terms on offer (from the indexed ``TermsOffered`` events)."""
    works = bindings.WorkRegistry(c["WorkRegistry"])
    if not 0 <= work_id < works.work_count():
        raise NotFoundError(f"no work {work_id}")
    content, uri, registrant, who, shares, total_eth, total_jam = works.work(work_id)
    parents, ancestors, ancestor_bps, derivative_bps = works.lineage(work_id)
    token = c["JamToken"].address
    sent: dict[int, list[int]] = {int(a): [0, 0] for a in ancestors}
    received: dict[int, list[int]] = {}
    for event in forwarded or []:
        a = event["args"]
        column = 1 if a["token"] == token else 0
        if int(a["workId"]) == work_id and int(a["ancestorId"]) in sent:
            sent[int(a["ancestorId"])][column] += int(a["amount"])
        if int(a["ancestorId"]) == work_id:
            received.setdefault(int(a["workId"]), [0, 0])[column] += int(a["amount"])
    licences = []
    if "Licensing" in c:
        licensing = c["Licensing"]
        for event in offered or []:
            if int(event["args"]["workId"]) != work_id:
                continue
            terms_id = int(event["args"]["termsId"])
            _, price, days, usage, territory, active = licensing.functions.terms(terms_id).call()
            licences.append(
                {
                    "terms": terms_id,
                    "usage": USAGES[usage],
                    "days": int(days),
                    "territory": bytes(territory).decode("ascii", "replace"),
                    "price_wei": str(price),
                    "active": bool(active),
                    "blocked_until": int(licensing.functions.exclusiveUntil(work_id, usage).call()),
                }
            )
    lead = works.lead_of(work_id)
    return {
        "lead": lead,
        "chain_time": int(c["WorkRegistry"].w3.eth.get_block("latest")["timestamp"]),
        "auctions": _auctions(c, work_id, auctions or []),
        "family": {
            "parents": [int(p) for p in parents],
            "ancestors": [
                {
                    "work": int(a),
                    "bps": int(b),
                    "sent_eth": str(sent[int(a)][0]),
                    "sent_jam": str(sent[int(a)][1]),
                }
                for a, b in zip(ancestors, ancestor_bps, strict=True)
            ],
            "derivative_bps": int(derivative_bps),
            "received_from": [
                {"work": w, "eth": str(v[0]), "jam": str(v[1])} for w, v in sorted(received.items())
            ],
        },
        "licence_terms": sorted(licences, key=lambda t: t["terms"]),
        "id": work_id,
        "content_hash": "0x" + bytes(content).hex(),
        "metadata_uri": uri,
        "registrant": registrant,
        "received_eth": str(total_eth),
        "received_jam": str(total_jam),
        "contributors": [
            {
                "address": a,
                "share_bps": s,
                "owed_eth": str(works.owed_eth(work_id, a)),
                "owed_jam": str(works.owed_token(work_id, a)),
            }
            for a, s in zip(who, shares, strict=True)
        ],
    }


def _auctions(c: dict[str, Contract], work_id: int, created: list[dict[str, Any]]) -> list[Any]:
    """A work's exclusive-licence auctions, newest first, with their state."""
    if "Licensing" not in c:
        return []
    licensing = c["Licensing"]
    out = []
    for event in created:
        if int(event["args"]["workId"]) != work_id:
            continue
        auction_id = int(event["args"]["auctionId"])
        a = licensing.functions.auction(auction_id).call()
        out.append(
            {
                "auction": auction_id,
                "usage": USAGES[int(a[2])],
                "territory": bytes(a[3]).decode("ascii", "replace"),
                "days": int(a[4]),
                "commit_end": int(a[5]),
                "reveal_end": int(a[6]),
                "settled": bool(a[7]),
                "bids": int(a[8]),
                "revealed": int(a[9]),
                "leader": str(a[11]),
                "reserve_wei": str(a[12]),
                "price_wei": str(max(int(a[14]), int(a[12]))) if int(a[11], 16) else "0",
            }
        )
    return sorted(out, key=lambda x: -x["auction"])


def proposals(c: dict[str, Contract], created: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Proposals (from the indexed ProposalCreated events) with live state and tallies."""
    governor = c["JamGovernor"]
    now = int(governor.w3.eth.get_block("latest")["timestamp"])
    result = []
    for event in created:
        args = event["args"]
        pid = int(args["proposalId"])
        against, for_, abstain = governor.functions.proposalVotes(pid).call()
        start = int(args["voteStart"])
        quorum = governor.functions.quorum(min(start, now - 1)).call()
        result.append(
            {
                "id": str(pid),
                "proposer": args["proposer"],
                "description": args["description"],
                "state": PROPOSAL_STATES[governor.functions.state(pid).call()],
                "votes_for": str(for_),
                "votes_against": str(against),
                "votes_abstain": str(abstain),
                "vote_start": start,
                "vote_end": int(args["voteEnd"]),
                "quorum": str(quorum),
                "eta": int(governor.functions.proposalEta(pid).call()),
                "chain_time": now,
                "values": [str(v) for v in args["values"]],
                "targets": list(args["targets"]),
                "calldatas": list(args["calldatas"]),
                "block": event["block"],
            }
        )
    return result


def operators(c: dict[str, Contract]) -> dict[str, Any]:
    """Registered node operators and the registry's parameters."""
    nodes = bindings.NodeRegistry(c["NodeRegistry"])
    minimum, delay = nodes.parameters()
    listed = []
    for address in nodes.registered_operators():
        staked, _, _, _, peer, endpoint, metadata = nodes.operator(address)
        listed.append(
            {
                "address": address,
                "stake": str(staked),
                "peer_id": peer,
                "endpoint": endpoint,
                "metadata": metadata,
            }
        )
    return {"min_stake": str(minimum), "unbond_delay_s": int(delay), "operators": listed}


def pool(c: dict[str, Contract]) -> dict[str, Any]:
    """The royalty pool: its address and the funds not settled into any period yet."""
    royalty_pool = bindings.RoyaltyPool(c["RoyaltyPool"])
    eth, jam = royalty_pool.unallocated()
    return {
        "address": royalty_pool.address,
        "unallocated_eth": str(eth),
        "unallocated_jam": str(jam),
    }


def rewards(c: dict[str, Contract], reported: list[dict[str, Any]]) -> dict[str, Any]:
    """Node operators' rewards: the current period's pot, the formula and windows, and every
    report (from the indexed ``Reported`` events) with its share and state."""
    contract = c["NodeRewards"]
    functions = contract.functions
    now = int(contract.w3.eth.get_block("latest")["timestamp"])
    current = int(functions.currentPeriod().call())
    formula, report_window, dispute_window, period_s, genesis = functions.parameters().call()
    pot = functions.period(current).call()
    reports = []
    for event in reported:
        a = event["args"]
        period, node = int(a["periodId"]), str(a["node"])
        (weight, disputed, voided, claimed), eth, jam = functions.entry(period, node).call()
        total = int(functions.period(period).call()[2])
        _, _, dispute_end = functions.periodTimes(period).call()
        if voided:
            state = "voided"
        elif claimed:
            state = "withdrawn"
        elif disputed:
            state = "disputed"
        else:
            state = "claimable" if now >= dispute_end else "in dispute window"
        reports.append(
            {
                "period": period,
                "node": node,
                "minutes": int(a["soloMinutes"]) + int(a["sharedMinutes"]),
                "countersigned_minutes": int(a["sharedMinutes"]),
                "quality_bps": int(a["quality"]),
                "weight_share": round(int(weight) / total, 6) if total else 0.0,
                "eth": str(eth),
                "jam": str(jam),
                "state": state,
                "claimable_at": int(dispute_end),
            }
        )
    return {
        "address": contract.address,
        "current_period": current,
        "period_s": int(period_s),
        "genesis": int(genesis),
        "pot_eth": str(pot[0]),
        "pot_jam": str(pot[1]),
        "report_window_s": int(report_window),
        "dispute_window_s": int(dispute_window),
        "formula": {
            "conceal_penalty": int(formula[0]),
            "latency_penalty": int(formula[1]),
            "latency_target_ms": int(formula[2]),
            "overrun_penalty": int(formula[3]),
        },
        "reports": sorted(reports, key=lambda r: (-r["period"], r["node"])),
    }
