"""Governance end to end on anvil: delegate, propose a fee change, vote, queue, execute."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.exceptions import ContractCustomError

from node.chain.deploy import JAM
from tests.chain.conftest import Chain, revert_reason

ACTIVE, SUCCEEDED, QUEUED, EXECUTED = 1, 4, 5, 7


def test_a_fee_change_passes_through_the_timelock(chain: Chain) -> None:
    token, governor, works = chain.c["JamToken"], chain.c["JamGovernor"], chain.c["WorkRegistry"]
    alice, bob = chain.accounts[1], chain.accounts[2]
    assert token.functions.CLOCK_MODE().call() == "mode=timestamp"
    # Alice and Bob hold 1M JAM each (1 % of the supply each); quorum is 4 %, so they need
    # more: the proposal passes only if enough votes exist — delegate 4 accounts' votes.
    voters = chain.accounts[1:6]
    for voter in voters:
        chain.send(token.functions.delegate(voter), voter)
    chain.advance(1)  # votes count from the second after delegating
    call = works.functions.setProtocolFee(500)
    target, calldata = works.address, call._encode_transaction_data()
    description = "Raise the protocol fee to 5 %"
    chain.send(governor.functions.propose([target], [0], [calldata], description), alice)
    desc_hash = Web3.keccak(text=description)
    proposal = governor.functions.hashProposal([target], [0], [calldata], desc_hash).call()
    chain.advance(61)
    assert governor.functions.state(proposal).call() == ACTIVE
    for voter in voters:
        chain.send(governor.functions.castVote(proposal, 1), voter)
    assert governor.functions.proposalVotes(proposal).call()[1] == 5 * 1_000_000 * JAM
    chain.advance(601)
    assert governor.functions.state(proposal).call() == SUCCEEDED
    chain.send(governor.functions.queue([target], [0], [calldata], desc_hash), bob)
    assert governor.functions.state(proposal).call() == QUEUED
    with pytest.raises(ContractCustomError):  # the timelock's delay has not passed
        governor.functions.execute([target], [0], [calldata], desc_hash).call({"from": bob})
    chain.advance(61)
    chain.send(governor.functions.execute([target], [0], [calldata], desc_hash), bob)
    assert governor.functions.state(proposal).call() == EXECUTED
    assert works.functions.protocolFeeBps().call() == 500


def test_only_the_timelock_changes_parameters(chain: Chain) -> None:
    works, nodes, governor = (
        chain.c["WorkRegistry"],
        chain.c["NodeRegistry"],
        chain.c["JamGovernor"],
    )
    alice, deployer = chain.accounts[1], chain.deployment.deployer

    reason = revert_reason
    assert (
        reason(works.functions.setProtocolFee(100), alice)
        == f"WorkRegistryUnauthorized(caller={alice})"
    )
    assert (
        reason(nodes.functions.slash(alice, 1), alice)
        == f"NodeRegistryUnauthorized(caller={alice})"
    )
    assert (
        reason(nodes.functions.setParameters(1, 1), deployer)
        == f"NodeRegistryUnauthorized(caller={deployer})"
    )
    assert (
        reason(governor.functions.setVotingPeriod(1), alice)
        == f"GovernorOnlyExecutor(account={alice})"
    )
    assert reason(governor.functions.updateQuorumNumerator(1), alice).startswith(
        "GovernorOnlyExecutor"
    )
    # The deployer gave up the timelock's admin role: nobody can grant themselves a proposer.
    timelock = chain.c["JamTimelock"]
    role = timelock.functions.PROPOSER_ROLE().call()
    assert reason(timelock.functions.grantRole(role, deployer), deployer).startswith(
        "AccessControlUnauthorizedAccount"
    )


def test_votes_bought_after_the_snapshot_do_not_count(chain: Chain) -> None:
    token, governor, works = chain.c["JamToken"], chain.c["JamGovernor"], chain.c["WorkRegistry"]
    alice, whale, buyer = chain.accounts[1], chain.accounts[2], chain.accounts[9]
    chain.send(token.functions.delegate(alice), alice)
    # Genesis holders vote for themselves: the buyer hands its own votes to the whale, so it
    # holds none at the snapshot.
    chain.send(token.functions.delegate(whale), buyer)
    chain.advance(1)
    calldata = works.functions.setProtocolFee(0)._encode_transaction_data()
    chain.send(governor.functions.propose([works.address], [0], [calldata], "No fee"), alice)
    proposal = governor.functions.hashProposal(
        [works.address], [0], [calldata], Web3.keccak(text="No fee")
    ).call()
    chain.advance(61)  # voting is open; the snapshot was taken at the start
    chain.send(token.functions.transfer(buyer, 1_000_000 * JAM), whale)
    chain.send(token.functions.delegate(buyer), buyer)
    chain.send(governor.functions.castVote(proposal, 1), buyer)
    assert governor.functions.proposalVotes(proposal).call()[1] == 0
    assert governor.functions.hasVoted(proposal, buyer).call()
    chain.send(governor.functions.castVote(proposal, 1), alice)
    assert governor.functions.proposalVotes(proposal).call()[1] == 1_000_000 * JAM
    chain.advance(601)
    assert governor.functions.state(proposal).call() == 3  # Defeated: 1 % < 4 % quorum


def test_governance_slashes_an_operator(chain: Chain) -> None:
    token, governor, nodes = chain.c["JamToken"], chain.c["JamGovernor"], chain.c["NodeRegistry"]
    operator, voters = chain.accounts[9], chain.accounts[1:6]
    chain.send(token.functions.approve(nodes.address, 20_000 * JAM), operator)
    chain.send(nodes.functions.stake(20_000 * JAM), operator)
    chain.send(nodes.functions.register("12D3KooWBad", "https://bad.example", "{}"), operator)
    for voter in voters:
        chain.send(token.functions.delegate(voter), voter)
    chain.advance(1)
    calldata = nodes.functions.slash(operator, 15_000 * JAM)._encode_transaction_data()
    args = ([nodes.address], [0], [calldata])
    description = "Slash the node that served bad audio"
    chain.send(governor.functions.propose(*args, description), voters[0])
    digest = Web3.keccak(text=description)
    proposal = governor.functions.hashProposal(*args, digest).call()
    chain.advance(61)
    for voter in voters:
        chain.send(governor.functions.castVote(proposal, 1), voter)
    chain.advance(601)
    chain.send(governor.functions.queue(*args, digest), voters[0])
    chain.advance(61)
    treasury = chain.deployment.addresses["JamTimelock"]
    before = token.functions.balanceOf(treasury).call()
    chain.send(governor.functions.execute(*args, digest), voters[0])
    assert governor.functions.state(proposal).call() == EXECUTED
    assert token.functions.balanceOf(treasury).call() - before == 15_000 * JAM
    assert nodes.functions.operator(operator).call()[0] == 5_000 * JAM
    assert operator not in nodes.functions.registeredOperators().call()
