"""Node operators' rewards (off-chain side of contracts/src/NodeRewards.sol): what a node
reports for a period, the quality formula, and countersigning a peer's shared minutes.

A node that shared bridged sessions with another node in a period asks it to countersign the
musician-minutes they shared (with the reporter's quality figures, so the signature cannot be
reused for other figures). The peer signs only what it saw itself: ``countersign`` refuses a
claim of more minutes than the peer measured (beyond ``MINUTES_TOLERANCE``). What stays
trusted: minutes in sessions no other node saw, and the quality figures themselves (a peer
sees the reporter's streams after the network, not its mix clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount

from node.chain.consent import DOMAIN_TYPE
from node.errors import InputError

DOMAIN_NAME = "jamnet NodeRewards"
DOMAIN_VERSION = "1"
SERVED_TYPE = [
    {"name": "period", "type": "uint256"},
    {"name": "reporter", "type": "address"},
    {"name": "servedMinutes", "type": "uint64"},
    {"name": "concealedBps", "type": "uint16"},
    {"name": "addedMs", "type": "uint16"},
    {"name": "overrunBps", "type": "uint16"},
]
MINUTES_TOLERANCE = 0.02
"""A peer countersigns up to 2 % (at least 1 minute) more than it measured itself: the two
nodes' clocks start and stop a musician at slightly different moments."""


@dataclass(frozen=True)
class Served:
    """What a node measured for the musician-minutes it served in a period."""

    solo_minutes: int
    shared_minutes: int
    concealed_bps: int
    """Concealed frames, in basis points of all frames (0.5 % = 50)."""
    added_ms: int
    """Node-added latency (median), in ms."""
    overrun_bps: int
    """Mix-clock ticks that overran, in basis points of all ticks."""

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        """NodeRewards' Report struct."""
        return (
            self.solo_minutes,
            self.shared_minutes,
            self.concealed_bps,
            self.added_ms,
            self.overrun_bps,
        )


@dataclass(frozen=True)
class Formula:
    """NodeRewards' quality formula (governed)."""

    conceal_penalty: int = 20
    latency_penalty: int = 200
    latency_target_ms: int = 10
    overrun_penalty: int = 10

    @classmethod
    def from_chain(cls, values: Any) -> Formula:
        """From ``parameters()[0]``."""
        return cls(*(int(v) for v in values))

    def quality(self, served: Served) -> int:
        """Quality in basis points, as the contract computes it."""
        late = max(0, served.added_ms - self.latency_target_ms)
        penalty = (
            self.conceal_penalty * served.concealed_bps
            + self.latency_penalty * late
            + self.overrun_penalty * served.overrun_bps
        )
        return max(0, 10_000 - penalty)

    def weight(self, served: Served) -> int:
        """minutes × quality."""
        return (served.solo_minutes + served.shared_minutes) * self.quality(served)


def served_message(
    chain_id: int, rewards: str, period: int, reporter: str, minutes: int, served: Served
) -> SignableMessage:
    """What a peer node signs to countersign ``minutes`` it shared with ``reporter``."""
    return encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_TYPE, "Served": SERVED_TYPE},
            "primaryType": "Served",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": rewards,
            },
            "message": {
                "period": period,
                "reporter": reporter,
                "servedMinutes": minutes,
                "concealedBps": served.concealed_bps,
                "addedMs": served.added_ms,
                "overrunBps": served.overrun_bps,
            },
        }
    )


def countersign(
    key: LocalAccount,
    chain_id: int,
    rewards: str,
    period: int,
    reporter: str,
    claimed_minutes: int,
    measured_minutes: float,
    served: Served,
) -> bytes:
    """The peer's countersignature of ``claimed_minutes`` shared with ``reporter``, if it is
    no more than what the peer measured itself; raises ``InputError`` (with both figures)
    otherwise."""
    allowed = measured_minutes + max(1.0, measured_minutes * MINUTES_TOLERANCE)
    if claimed_minutes <= 0 or claimed_minutes > allowed:
        raise InputError(
            f"{reporter} claims {claimed_minutes} shared musician-minutes in period {period};"
            f" this node measured {measured_minutes:.1f}: not countersigned"
        )
    message = served_message(chain_id, rewards, period, reporter, claimed_minutes, served)
    return bytes(key.sign_message(message).signature)
