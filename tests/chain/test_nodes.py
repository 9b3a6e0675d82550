"""Node operators on anvil: stake, register, update, unbond, withdraw; slashing by governance."""

from __future__ import annotations

from node.chain.deploy import JAM
from tests.chain.conftest import ATTESTER, Chain, revert_reason


def test_stake_register_unbond_withdraw(chain: Chain) -> None:
    token, nodes = chain.c["JamToken"], chain.c["NodeRegistry"]
    operator = chain.accounts[1]
    assert revert_reason(
        nodes.functions.register("12D3KooW", "https://n", "{}"), operator
    ).startswith("NodeRegistryStakeTooLow")
    chain.send(token.functions.approve(nodes.address, 20_000 * JAM), operator)
    # A stake below the minimum could register nothing: it is refused, not locked away.
    assert revert_reason(nodes.functions.stake(5_000 * JAM), operator) == (
        f"NodeRegistryStakeTooLow(stake={5_000 * JAM}, minimum={10_000 * JAM})"
    )
    chain.send(nodes.functions.stake(10_000 * JAM), operator)
    chain.send(
        nodes.functions.register("12D3KooWAbc", "https://node.example:8443", '{"region":"eu"}'),
        operator,
    )
    assert nodes.functions.registeredOperators().call() == [ATTESTER.address, operator]
    assert nodes.functions.operatorOf("12D3KooWAbc").call() == operator  # who a peer is
    assert int(nodes.functions.operatorOf("12D3KooWNobody").call(), 16) == 0
    chain.send(nodes.functions.register("12D3KooWAbc", "https://moved.example", "{}"), operator)
    assert nodes.functions.operator(operator).call()[5] == "https://moved.example"
    other = chain.accounts[2]
    chain.send(token.functions.approve(nodes.address, 10_000 * JAM), other)
    chain.send(nodes.functions.stake(10_000 * JAM), other)
    assert revert_reason(
        nodes.functions.register("12D3KooWAbc", "https://x", "{}"), other
    ).startswith("NodeRegistryPeerTaken")
    assert (
        revert_reason(nodes.functions.register("", "https://x", "{}"), other)
        == "NodeRegistryBadField(field=peerId)"
    )
    before = token.functions.balanceOf(operator).call()
    chain.send(nodes.functions.unbond(), operator)
    assert nodes.functions.registeredOperators().call() == [ATTESTER.address]
    assert int(nodes.functions.operatorOf("12D3KooWAbc").call(), 16) == 0  # released
    assert revert_reason(nodes.functions.withdraw(), operator).startswith("NodeRegistryLocked")
    chain.advance(3601)
    chain.send(nodes.functions.withdraw(), operator)
    assert token.functions.balanceOf(operator).call() - before == 10_000 * JAM


def test_only_governance_slashes_and_slashed_stake_goes_to_the_treasury(chain: Chain) -> None:
    token, nodes = chain.c["JamToken"], chain.c["NodeRegistry"]
    operator = chain.accounts[1]
    timelock = chain.deployment.addresses["JamTimelock"]
    chain.send(token.functions.approve(nodes.address, 12_000 * JAM), operator)
    chain.send(nodes.functions.stake(12_000 * JAM), operator)
    chain.send(nodes.functions.register("12D3KooWSlash", "https://n", "{}"), operator)
    assert revert_reason(nodes.functions.slash(operator, 1), operator) == (
        f"NodeRegistryUnauthorized(caller={operator})"
    )
    # The timelock itself (impersonated on the devnet, as a passed proposal would call it).
    chain.w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
    chain.w3.provider.make_request("anvil_setBalance", [timelock, hex(10**18)])  # type: ignore[arg-type]
    treasury_before = token.functions.balanceOf(timelock).call()
    chain.send(nodes.functions.slash(operator, 3_000 * JAM), timelock)
    assert token.functions.balanceOf(timelock).call() - treasury_before == 3_000 * JAM
    assert nodes.functions.operator(operator).call()[0] == 9_000 * JAM
    assert nodes.functions.registeredOperators().call() == [ATTESTER.address], (
        "below the minimum: deregistered"
    )
    chain.send(nodes.functions.setParameters(5_000 * JAM, 60), timelock)
    assert nodes.functions.parameters().call() == [5_000 * JAM, 60]


def test_a_peer_id_belongs_to_one_registered_operator(chain: Chain) -> None:
    # The sequence that let two operators hold one peer id.
    token, nodes = chain.c["JamToken"], chain.c["NodeRegistry"]
    a, b = chain.accounts[1], chain.accounts[2]
    for who in (a, b):
        chain.send(token.functions.approve(nodes.address, 30_000 * JAM), who)
    chain.send(nodes.functions.stake(10_000 * JAM), a)
    chain.send(nodes.functions.register("12D3KooWP1", "https://a", "{}"), a)
    chain.send(nodes.functions.unbond(), a)
    assert nodes.functions.operator(a).call()[4] == "", "leaving forgets the id"
    chain.send(nodes.functions.stake(10_000 * JAM), b)
    chain.send(nodes.functions.register("12D3KooWP1", "https://b", "{}"), b)
    chain.send(nodes.functions.stake(10_000 * JAM), a)
    chain.send(nodes.functions.register("12D3KooWP2", "https://a", "{}"), a)
    assert revert_reason(nodes.functions.register("12D3KooWP1", "https://a", "{}"), a) == (
        f"NodeRegistryPeerTaken(peerId=12D3KooWP1, owner={b})"
    )
    # Moving to another id releases the old one (only one's own claim).
    chain.send(nodes.functions.register("12D3KooWP3", "https://a", "{}"), a)
    chain.send(token.functions.approve(nodes.address, 10_000 * JAM), chain.accounts[3])
    chain.send(nodes.functions.stake(10_000 * JAM), chain.accounts[3])
    chain.send(nodes.functions.register("12D3KooWP2", "https://c", "{}"), chain.accounts[3])
    assert nodes.functions.operator(b).call()[4] == "12D3KooWP1"
