"""Licences (off-chain side of contracts/src/Licensing.sol): usages, territories, sealed-bid
commitments, and licence records as readers see them.

A bid's commitment is ``keccak256(abi.encode(auctionId, bidder, value, salt))``: all four,
32 bytes each, so it can neither be replayed into another auction nor revealed by another
address. ``new_salt`` draws 32 random bytes; a bidder must keep it (and the value) until the
reveal, or the deposit is forfeited to the work's contributors.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from eth_abi.abi import encode
from web3 import Web3

from node.errors import InputError

USAGES = ("online-video", "advert", "film", "game", "broadcast", "other")
"""Licensing.sol's usage numbers, in order."""
WORLDWIDE = "WW"


def parse_usage(value: object) -> int:
    """A usage name (or its number) → Licensing's usage number."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(USAGES):
        return value
    if isinstance(value, str) and value.strip().lower() in USAGES:
        return USAGES.index(value.strip().lower())
    raise InputError(f"usage must be one of {', '.join(USAGES)}")


def parse_territory(value: object) -> bytes:
    """An ISO 3166 alpha-2 country code, or WW for worldwide → the contract's bytes2."""
    if not isinstance(value, str) or len(value.strip()) != 2 or not value.strip().isalpha():
        raise InputError("territory must be a two-letter country code (ISO 3166), or WW")
    code = value.strip().upper()
    if not code.isascii():
        raise InputError("territory must be a two-letter country code (ISO 3166), or WW")
    return code.encode("ascii")


def parse_term_days(value: object) -> int:
    """A licence term in whole days, 1-3650."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
        raise InputError("term must be a whole number of days, 1-3650")
    return value


def new_salt() -> bytes:
    """32 random bytes for a sealed bid."""
    return secrets.token_bytes(32)


def commitment(auction_id: int, bidder: str, value: int, salt: bytes) -> bytes:
    """What ``Licensing.bidCommitment`` computes."""
    if len(salt) != 32:
        raise InputError("a bid's salt is 32 bytes (64 hex digits)")
    packed = encode(
        ["uint256", "address", "uint256", "bytes32"],
        [auction_id, Web3.to_checksum_address(bidder), value, salt],
    )
    return bytes(Web3.keccak(packed))


def licence_view(
    record: Any, valid: bool, licence_id: int, now: float | None = None
) -> dict[str, Any]:
    """A ``Licensing.verify`` result as a reader sees it."""
    work_id, licensee, usage, territory, exclusive, start, end, price, source = record
    now = time.time() if now is None else now
    return {
        "licence": licence_id,
        "work": int(work_id),
        "licensee": str(licensee),
        "usage": USAGES[int(usage)] if int(usage) < len(USAGES) else str(usage),
        "territory": bytes(territory).decode("ascii", "replace"),
        "exclusive": bool(exclusive),
        "start": int(start),
        "end": int(end),
        "priceWei": int(price),
        ("auction" if exclusive else "terms"): int(source),
        "valid": bool(valid),
        "daysLeft": max(0.0, round((int(end) - now) / 86400, 1)),
    }
