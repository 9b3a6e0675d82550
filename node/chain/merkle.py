"""Merkle trees of royalty payouts, as RoyaltyPool checks them.

A leaf is ``keccak256(keccak256(abi.encode(periodId, workId, eth, token)))`` (hashed twice,
so no leaf can pass for an inner node); an inner node is the keccak-256 of its two children
in ascending order (OpenZeppelin's ``MerkleProof`` with commutative pairs). A level with an
odd count lifts its last node unchanged. Settling a period stores only the root, whatever
the number of works; a claim carries its proof, ⌈log₂ n⌉ hashes.
"""

from __future__ import annotations

from dataclasses import dataclass

from Crypto.Hash import keccak
from eth_abi.abi import encode


def _keccak(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def leaf(period_id: int, work_id: int, eth: int, token: int) -> bytes:
    """One payout's leaf."""
    encoded = encode(["uint256", "uint256", "uint256", "uint256"], [period_id, work_id, eth, token])
    return _keccak(_keccak(encoded))


def _pair(a: bytes, b: bytes) -> bytes:
    return _keccak(a + b if a < b else b + a)


@dataclass(frozen=True)
class Payout:
    """What one work gets from one period."""

    work_id: int
    eth: int
    token: int


class PayoutTree:
    """The tree over one period's payouts: its root and each work's proof."""

    def __init__(self, period_id: int, payouts: list[Payout]) -> None:
        if not payouts:
            raise ValueError("a period with no payouts has no tree")
        ids = [p.work_id for p in payouts]
        if len(set(ids)) != len(ids):
            raise ValueError("a work appears twice in one period")
        self.period_id = period_id
        self.payouts = {p.work_id: p for p in payouts}
        self._index = {p.work_id: i for i, p in enumerate(payouts)}
        level = [leaf(period_id, p.work_id, p.eth, p.token) for p in payouts]
        self._levels = [level]
        while len(level) > 1:
            level = [
                _pair(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                for i in range(0, len(level), 2)
            ]
            self._levels.append(level)

    @property
    def root(self) -> bytes:
        """The root RoyaltyPool.settle stores."""
        return self._levels[-1][0]

    def proof(self, work_id: int) -> list[bytes]:
        """The sibling hashes from a work's leaf up to the root."""
        index = self._index[work_id]
        proof = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof


def verify(root: bytes, period_id: int, payout: Payout, proof: list[bytes]) -> bool:
    """Whether ``proof`` leads from the payout's leaf to ``root``."""
    node = leaf(period_id, payout.work_id, payout.eth, payout.token)
    for sibling in proof:
        node = _pair(node, sibling)
    return node == root
