"""Stateful property test on anvil: random register / pay / withdraw / fee-change sequences.

After every step: the registry holds exactly what was paid in minus what left it; what it
owes (to every contributor, plus uncollected fees) never exceeds what it holds, and the
rounding dust is at most one wei per contributor per asset; shares never change; JAM's total
supply is constant.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3 import Web3

from tests.chain.conftest import KEYS, Chain, register_work, registration


@pytest.mark.slow
def test_registry_conserves_funds(chain: Chain) -> None:
    works, token = chain.c["WorkRegistry"], chain.c["JamToken"]
    timelock = chain.deployment.addresses["JamTimelock"]
    chain.w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
    chain.w3.provider.make_request("anvil_setBalance", [timelock, hex(10**20)])  # type: ignore[arg-type]
    supply = token.functions.totalSupply().call()
    w3 = chain.w3

    class Registry(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            self.splits: list[tuple[list[str], list[int]]] = []
            self.eth_in = works_balance_eth()
            self.jam_in = token.functions.balanceOf(works.address).call()

        def teardown(self) -> None:
            w3.provider.make_request("evm_revert", [self.snapshot])  # type: ignore[arg-type]

        @rule(data=st.data(), count=st.integers(1, 4))
        def register(self, data: Any, count: int) -> None:
            members = data.draw(st.permutations(range(1, 10)))[:count]
            cuts = sorted(
                data.draw(
                    st.lists(
                        st.integers(1, 9999), min_size=count - 1, max_size=count - 1, unique=True
                    )
                )
            )
            shares = [b - a for a, b in zip([0, *cuts], [*cuts, 10000], strict=True)]
            addresses = [KEYS[m].address for m in members]
            content = Web3.keccak(
                text=f"work {len(self.splits)} {data.draw(st.integers(0, 10**9))}"
            )
            reg = registration(content, addresses, shares, nonce=len(self.splits))
            register_work(chain, addresses[0], reg, {KEYS[m].address: KEYS[m] for m in members})
            self.splits.append((addresses, shares))

        @precondition(lambda self: self.splits)
        @rule(data=st.data(), wei=st.integers(1, 10**18), in_jam=st.booleans())
        def pay(self, data: Any, wei: int, in_jam: bool) -> None:
            work = data.draw(st.integers(0, len(self.splits) - 1))
            payer = chain.accounts[data.draw(st.integers(1, 9))]
            if in_jam:
                chain.send(token.functions.approve(works.address, wei), payer)
                chain.send(works.functions.payToken(work, wei), payer)
                self.jam_in += wei
            else:
                chain.send(works.functions.pay(work), payer, value=wei)
                self.eth_in += wei

        @precondition(lambda self: self.splits)
        @rule(data=st.data(), in_jam=st.booleans())
        def withdraw(self, data: Any, in_jam: bool) -> None:
            work = data.draw(st.integers(0, len(self.splits) - 1))
            who = data.draw(st.sampled_from(self.splits[work][0]))
            owed_fn = works.functions.owedToken if in_jam else works.functions.owedEth
            owed = owed_fn(work, who).call()
            if owed == 0:
                return
            chain.send(
                (works.functions.withdrawToken if in_jam else works.functions.withdraw)(work), who
            )
            assert owed_fn(work, who).call() == 0, "nobody withdraws more than owed"
            if in_jam:
                self.jam_in -= owed
            else:
                self.eth_in -= owed

        @rule(fee=st.integers(0, 1000))
        def set_fee(self, fee: int) -> None:
            chain.send(works.functions.setProtocolFee(fee), timelock)

        @rule()
        def collect(self) -> None:
            eth, jam = works.functions.pendingFees().call()
            chain.send(works.functions.collectFees(), chain.accounts[1])
            self.eth_in -= eth
            self.jam_in -= jam

        @invariant()
        def conserved(self) -> None:
            if not hasattr(self, "splits"):
                return
            held_eth, held_jam = (
                works_balance_eth(),
                token.functions.balanceOf(works.address).call(),
            )
            assert (held_eth, held_jam) == (self.eth_in, self.jam_in)
            owed_eth = owed_jam = 0
            contributors = 0
            for work, (addresses, shares) in enumerate(self.splits):
                detail = works.functions.work(work).call()
                assert (list(detail[3]), list(detail[4])) == (addresses, shares), (
                    "shares never change"
                )
                for who in addresses:
                    owed_eth += works.functions.owedEth(work, who).call()
                    owed_jam += works.functions.owedToken(work, who).call()
                    contributors += 1
            fees_eth, fees_jam = works.functions.pendingFees().call()
            assert owed_eth + fees_eth <= held_eth <= owed_eth + fees_eth + contributors
            assert owed_jam + fees_jam <= held_jam <= owed_jam + fees_jam + contributors
            assert token.functions.totalSupply().call() == supply

    def works_balance_eth() -> int:
        return int(w3.eth.get_balance(works.address))

    runner = Registry.TestCase
    runner.settings = settings(
        max_examples=12,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    runner().runTest()
