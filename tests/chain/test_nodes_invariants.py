"""Stateful property test on anvil: several operators stake (also below the minimum), register
peer ids from a small shared pool, unbond, withdraw, get slashed and register again.

After every step: peer ids are unique among registered operators, and each registered
operator's id maps back to them; the registry holds exactly the sum of every operator's stake
plus what is unbonding; the list of registered operators matches their records.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from web3.exceptions import ContractCustomError

from node.chain.deploy import JAM
from tests.chain.conftest import Chain

PEERS = ["12D3KooWA", "12D3KooWB", "12D3KooWC"]


@pytest.mark.slow
def test_registry_keeps_peer_ids_unique_and_stake_accounted(chain: Chain) -> None:
    nodes, token = chain.c["NodeRegistry"], chain.c["JamToken"]
    w3 = chain.w3
    timelock = chain.deployment.addresses["JamTimelock"]
    w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
    w3.provider.make_request("anvil_setBalance", [timelock, hex(10**20)])  # type: ignore[arg-type]
    operators = chain.accounts[1:5]
    for who in operators:
        chain.send(token.functions.approve(nodes.address, 10**30), who)
    everyone = [*operators, chain.accounts[8]]  # and the attesting node of the fixture

    def attempt(call: Any, sender: str) -> bool:
        try:
            call.call({"from": sender})
        except ContractCustomError:
            return False
        chain.send(call, sender)
        return True

    class Registry(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]

        def teardown(self) -> None:
            w3.provider.make_request("evm_revert", [self.snapshot])  # type: ignore[arg-type]

        @rule(who=st.sampled_from(operators), amount=st.integers(1, 30_000))
        def stake(self, who: str, amount: int) -> None:
            attempt(nodes.functions.stake(amount * JAM), who)

        @rule(who=st.sampled_from(operators), peer=st.sampled_from(PEERS))
        def register(self, who: str, peer: str) -> None:
            attempt(nodes.functions.register(peer, f"https://{peer}.example", "{}"), who)

        @rule(who=st.sampled_from(operators))
        def unbond(self, who: str) -> None:
            attempt(nodes.functions.unbond(), who)

        @rule(who=st.sampled_from(operators))
        def withdraw(self, who: str) -> None:
            chain.advance(3601)
            attempt(nodes.functions.withdraw(), who)

        @rule(who=st.sampled_from(operators), amount=st.integers(1, 20_000))
        def slash(self, who: str, amount: int) -> None:
            attempt(nodes.functions.slash(who, amount * JAM), timelock)

        @invariant()
        def consistent(self) -> None:
            held = 0
            claims: dict[str, str] = {}
            registered = set(nodes.functions.registeredOperators().call())
            for who in everyone:
                staked, unbonding, _, is_registered, peer, _, _ = nodes.functions.operator(
                    who
                ).call()
                held += staked + unbonding
                assert is_registered == (who in registered)
                if is_registered:
                    assert peer, "a registered operator has a peer id"
                    assert peer not in claims, f"{peer} held by {claims.get(peer)} and {who}"
                    claims[peer] = who
            assert token.functions.balanceOf(nodes.address).call() == held

    Registry.TestCase.settings = settings(
        max_examples=15,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    Registry.TestCase().runTest()
