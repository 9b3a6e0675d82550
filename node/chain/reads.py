"""Read-only views of the contracts, shared by the JSON API (and shaped for it).

Plain synchronous functions over bound contracts; the API runs them in a worker thread.
Amounts are returned as decimal strings of base units (JSON numbers cannot hold them).
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.contract import Contract

from node.chain import bindings
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


def work(c: dict[str, Contract], work_id: int) -> dict[str, Any]:
    """A work, its split and what each contributor is owed."""
    works = bindings.WorkRegistry(c["WorkRegistry"])
    if not 0 <= work_id < works.work_count():
        raise NotFoundError(f"no work {work_id}")
    content, uri, registrant, who, shares, total_eth, total_jam = works.work(work_id)
    return {
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
