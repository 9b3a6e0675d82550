"""Stateful property test on anvil: random funding (ETH and JAM), periods ending, reports by
two registered nodes (some with countersigned shared minutes), disputes, governance upholding
or voiding, claims (some twice) and rollovers of unreported periods.

After every step: NodeRewards holds exactly what its periods received less what they paid out
or moved on (conservation, in ETH and JAM); no period pays out more than its pot; a node's
claim equals pot × weight / total weight; nobody claims twice; a voided report's share lands
in a later pot.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from node.chain.rewards import Formula, Served, countersign
from tests.chain.conftest import ATTESTER, KEYS, Chain, revert_reason
from tests.chain.test_rewards import _register_second_node

ETH = 10**18
NODES = (ATTESTER, KEYS[7])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rewards_conserve_and_pay_by_weight(chain: Chain) -> None:
    rewards, token, w3 = chain.c["NodeRewards"], chain.c["JamToken"], chain.w3
    funder = chain.accounts[2]
    chain.send(token.functions.approve(rewards.address, 10**30), funder)
    _register_second_node(chain)
    formula = Formula.from_chain(rewards.functions.parameters().call()[0])

    def now() -> int:
        return int(w3.eth.get_block("latest")["timestamp"])

    class Rewards(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            self.first = rewards.functions.currentPeriod().call()
            self.eth0 = w3.eth.get_balance(rewards.address)
            self.jam0 = token.functions.balanceOf(rewards.address).call()
            self.claimed: set[tuple[int, str]] = set()
            self.reported: dict[tuple[int, str], int] = {}

        def teardown(self) -> None:
            w3.provider.make_request("evm_revert", [self.snapshot])  # type: ignore[arg-type]

        @rule(wei=st.integers(1, 10**19), in_jam=st.booleans())
        def fund(self, wei: int, in_jam: bool) -> None:
            if in_jam:
                chain.send(rewards.functions.fundToken(wei), funder)
            else:
                chain.send(rewards.functions.fund(), funder, value=wei)

        @rule(seconds=st.sampled_from([3600, 43_200, 86_400, 172_800]))
        def time_passes(self, seconds: int) -> None:
            chain.advance(seconds)

        @rule(
            node=st.integers(0, 1),
            solo=st.integers(0, 5000),
            shared=st.integers(0, 500),
            concealed=st.integers(0, 600),
            added=st.integers(0, 40),
            overrun=st.integers(0, 300),
            back=st.integers(1, 2),
        )
        def report(
            self,
            node: int,
            solo: int,
            shared: int,
            concealed: int,
            added: int,
            overrun: int,
            back: int,
        ) -> None:
            period = rewards.functions.currentPeriod().call() - back
            if period < self.first:
                return
            reporter, peer = NODES[node], NODES[1 - node]
            served = Served(solo, shared, concealed, added, overrun)
            cosigns = []
            if shared:
                signature = countersign(
                    peer,
                    w3.eth.chain_id,
                    rewards.address,
                    period,
                    reporter.address,
                    shared,
                    shared,
                    served,
                )
                cosigns.append((peer.address, shared, signature))
            call = rewards.functions.report(period, served.as_tuple(), cosigns)
            _, report_end, _ = rewards.functions.periodTimes(period).call()
            if now() >= report_end:
                assert "NodeRewardsWrongPhase" in revert_reason(call, reporter.address)
            elif (period, reporter.address) in self.reported:
                assert "NodeRewardsAlreadyReported" in revert_reason(call, reporter.address)
            elif formula.weight(served) == 0:
                assert "NodeRewardsBadReport" in revert_reason(call, reporter.address)
            else:
                chain.send(call, reporter.address)
                self.reported[(period, reporter.address)] = formula.weight(served)
                assert rewards.functions.entry(period, reporter.address).call()[0][
                    0
                ] == formula.weight(served)

        @rule(data=st.data(), upheld=st.booleans())
        def dispute_and_resolve(self, data, upheld: bool) -> None:  # type: ignore[no-untyped-def]
            if not self.reported:
                return
            period, node = data.draw(st.sampled_from(sorted(self.reported)))
            other = next(n for n in NODES if n.address != node)
            _, _, dispute_end = rewards.functions.periodTimes(period).call()
            entry = rewards.functions.entry(period, node).call()[0]
            call = rewards.functions.dispute(period, node, b"\1" * 32)
            if now() >= dispute_end or entry[2]:
                assert "NodeRewards" in revert_reason(call, other.address)
                return
            chain.send(call, other.address)
            with chain.governance() as timelock:
                chain.send(rewards.functions.resolve(period, node, upheld), timelock)

        @rule(data=st.data())
        def claim(self, data) -> None:  # type: ignore[no-untyped-def]
            if not self.reported:
                return
            period, node = data.draw(st.sampled_from(sorted(self.reported)))
            _, _, dispute_end = rewards.functions.periodTimes(period).call()
            entry, eth, jam = rewards.functions.entry(period, node).call()
            call = rewards.functions.claim(period, node)
            if now() < dispute_end or entry[2] or (period, node) in self.claimed:
                assert "NodeRewards" in revert_reason(call, node)
                return
            pot = rewards.functions.period(period).call()
            assert eth == pot[0] * entry[0] // pot[2] and jam == pot[1] * entry[0] // pot[2]
            chain.send(call, node)
            self.claimed.add((period, node))

        @rule(back=st.integers(1, 3))
        def rollover(self, back: int) -> None:
            period = rewards.functions.currentPeriod().call() - back
            if period < self.first:
                return
            pot = rewards.functions.period(period).call()
            _, report_end, _ = rewards.functions.periodTimes(period).call()
            call = rewards.functions.rollover(period)
            if now() < report_end or pot[2] != 0 or (pot[0] == pot[3] and pot[1] == pot[4]):
                assert "NodeRewards" in revert_reason(call, funder)
                return
            chain.send(call, funder)

        @invariant()
        def conserved(self) -> None:
            if not hasattr(self, "first"):
                return
            last = rewards.functions.currentPeriod().call()
            pots = [rewards.functions.period(p).call() for p in range(self.first, last + 1)]
            for eth, jam, total, paid_eth, paid_jam, settled in pots:
                assert paid_eth <= eth and paid_jam <= jam and settled <= total
                if total and settled == total:  # every report withdrawn or voided: not a wei left
                    assert (paid_eth, paid_jam) == (eth, jam)
            assert w3.eth.get_balance(rewards.address) - self.eth0 == sum(p[0] - p[3] for p in pots)
            assert token.functions.balanceOf(rewards.address).call() - self.jam0 == sum(
                p[1] - p[4] for p in pots
            )

    Rewards.TestCase.settings = settings(
        max_examples=int(os.environ.get("JAMNET_REWARDS_EXAMPLES", "20")),
        stateful_step_count=20,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    Rewards.TestCase().runTest()
