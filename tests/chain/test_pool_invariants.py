"""Stateful property test on anvil: random fund / settle / claim sequences on RoyaltyPool,
with double claims, forged leaves and repeated settlements thrown in.

After every step: the pool holds exactly its unallocated funds plus what settled periods
have not paid out yet (conservation); no period has paid out more than it settled; every
claimed leaf is marked and pays nothing twice; what left the pool arrived in WorkRegistry
(works' totals plus the protocol fee).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3 import Web3

from node.chain.deploy import JAM
from node.chain.merkle import Payout, PayoutTree
from tests.chain.conftest import (
    KEYS,
    SETTLER,
    Chain,
    register_work,
    registration,
    revert_reason,
)

WORKS = 4


@pytest.mark.slow
def test_pool_conserves_and_never_pays_twice(chain: Chain) -> None:
    pool, works, token = chain.c["RoyaltyPool"], chain.c["WorkRegistry"], chain.c["JamToken"]
    w3 = chain.w3
    funder = chain.accounts[2]
    chain.send(token.functions.approve(pool.address, 10**30), funder)

    class Pool(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            base = works.functions.workCount().call()
            self.ids = [
                register_work(
                    chain,
                    KEYS[1 + i].address,
                    registration(
                        Web3.keccak(text=f"invariant work {base + i}"),
                        [KEYS[1 + i].address],
                        [10000],
                        nonce=10_000 + base + i,
                    ),
                    {},
                )
                for i in range(WORKS)
            ]
            self.unallocated = list(pool.functions.unallocated().call())
            self.trees: dict[int, PayoutTree] = {}
            self.claimed: set[tuple[int, int]] = set()
            self.sent_to_works = [0, 0]
            self.works_before = self._works_received()

        def teardown(self) -> None:
            w3.provider.make_request("evm_revert", [self.snapshot])  # type: ignore[arg-type]

        def _works_received(self) -> list[int]:
            eth = jam = 0
            for work in self.ids:
                detail = works.functions.work(work).call()
                eth, jam = eth + detail[5], jam + detail[6]
            fees = works.functions.pendingFees().call()
            return [eth + fees[0], jam + fees[1]]

        @rule(wei=st.integers(1, 10**18), in_jam=st.booleans())
        def fund(self, wei: int, in_jam: bool) -> None:
            if in_jam:
                chain.send(pool.functions.fundToken(wei), funder)
            else:
                chain.send(pool.functions.fund(), funder, value=wei)
            share = pool.functions.operatorShare().call()[0]
            self.unallocated[1 if in_jam else 0] += wei - wei * share // 10_000

        @rule(data=st.data(), period=st.integers(0, 2**64))
        def settle(self, data: Any, period: int) -> None:
            if period in self.trees:
                assert "RoyaltyPoolSettled" in revert_reason(
                    pool.functions.settle(period, b"\1" * 32, 0, 0, 1), SETTLER.address
                )
                return
            chosen = data.draw(st.lists(st.sampled_from(self.ids), min_size=1, unique=True))
            payouts = []
            left = list(self.unallocated)
            for work in chosen:
                eth = data.draw(st.integers(0, left[0]))
                jam = data.draw(st.integers(0, left[1]))
                left = [left[0] - eth, left[1] - jam]
                payouts.append(Payout(work, eth, jam))
            tree = PayoutTree(period, payouts)
            eth, jam = sum(p.eth for p in payouts), sum(p.token for p in payouts)
            chain.send(
                pool.functions.settle(period, tree.root, eth, jam, len(payouts)), SETTLER.address
            )
            self.trees[period] = tree
            self.unallocated = [self.unallocated[0] - eth, self.unallocated[1] - jam]

        @precondition(lambda self: self.trees)
        @rule(data=st.data())
        def claim(self, data: Any) -> None:
            period = data.draw(st.sampled_from(sorted(self.trees)))
            tree = self.trees[period]
            work = data.draw(st.sampled_from(sorted(tree.payouts)))
            p = tree.payouts[work]
            call = pool.functions.claim(period, work, p.eth, p.token, tree.proof(work))
            if (period, work) in self.claimed:
                assert "RoyaltyPoolClaimed" in revert_reason(call, chain.accounts[3])
                return
            chain.send(call, chain.accounts[3])
            self.claimed.add((period, work))
            self.sent_to_works = [self.sent_to_works[0] + p.eth, self.sent_to_works[1] + p.token]

        @precondition(lambda self: self.trees)
        @rule(data=st.data(), extra=st.integers(1, 10**18))
        def forged_claim(self, data: Any, extra: int) -> None:
            period = data.draw(st.sampled_from(sorted(self.trees)))
            tree = self.trees[period]
            work = data.draw(st.sampled_from(sorted(tree.payouts)))
            p = tree.payouts[work]
            call = pool.functions.claim(period, work, p.eth + extra, p.token, tree.proof(work))
            error = revert_reason(call, chain.accounts[3])
            assert "RoyaltyPoolBadProof" in error or "RoyaltyPoolClaimed" in error

        @invariant()
        def conserved(self) -> None:
            if not hasattr(self, "trees"):
                return
            assert list(pool.functions.unallocated().call()) == self.unallocated
            owed = [0, 0]
            for period, tree in self.trees.items():
                _, eth, jam, claimed_eth, claimed_jam, _, _ = pool.functions.period(period).call()
                assert claimed_eth <= eth and claimed_jam <= jam
                unclaimed = [p for w, p in tree.payouts.items() if (period, w) not in self.claimed]
                assert eth - claimed_eth == sum(p.eth for p in unclaimed)
                assert jam - claimed_jam == sum(p.token for p in unclaimed)
                owed = [owed[0] + eth - claimed_eth, owed[1] + jam - claimed_jam]
            assert w3.eth.get_balance(pool.address) == self.unallocated[0] + owed[0]
            assert token.functions.balanceOf(pool.address).call() == self.unallocated[1] + owed[1]
            received = self._works_received()
            assert [received[i] - self.works_before[i] for i in (0, 1)] == self.sent_to_works

    Pool.TestCase.settings = settings(
        max_examples=20,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    Pool.TestCase().runTest()
    assert JAM == 10**18
