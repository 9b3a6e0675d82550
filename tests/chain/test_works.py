"""Royalty splits on anvil: consent, provenance, payments in ETH and JAM, fees, withdrawals
(to oneself or elsewhere), attacks."""

from __future__ import annotations

from dataclasses import replace

from eth_account import Account
from web3 import Web3

from node.chain.build import extra_artifact
from node.chain.deploy import JAM
from tests.chain.conftest import (
    ATTESTER,
    KEYS,
    Chain,
    attest,
    consent,
    register_work,
    registration,
    revert_reason,
)


def test_register_pay_in_eth_and_jam_and_withdraw(chain: Chain) -> None:
    works, token = chain.c["WorkRegistry"], chain.c["JamToken"]
    registrant = chain.accounts[1]
    guitarist, drummer = Account.create(), Account.create()
    contributors = [registrant, guitarist.address, drummer.address]
    reg = registration(Web3.keccak(text="take 3"), contributors, [5000, 3000, 2000])
    signers = {guitarist.address: guitarist, drummer.address: drummer}
    assert register_work(chain, registrant, reg, signers) == 0
    assert works.functions.workCount().call() == 1
    again = replace(reg, nonce=2)
    signatures = [b"", *(consent(chain, a, again, registrant) for a in (guitarist, drummer))]
    assert revert_reason(
        works.functions.register(
            again.as_tuple(), signatures, attest(chain, reg.content_hash, contributors)
        ),
        registrant,
    ).startswith("WorkRegistryDuplicate")
    fan, label = chain.accounts[4], chain.accounts[5]
    chain.send(works.functions.pay(0), fan, value=Web3.to_wei(1, "ether"))
    chain.send(token.functions.approve(works.address, 400 * JAM), label)
    chain.send(works.functions.payToken(0, 400 * JAM), label)
    # 2.5 % fee: 0.975 ETH and 390 JAM are split 50/30/20.
    assert works.functions.owedEth(0, guitarist.address).call() == Web3.to_wei(0.2925, "ether")
    assert works.functions.owedToken(0, drummer.address).call() == 78 * JAM
    before = chain.w3.eth.get_balance(registrant)
    receipt = chain.send(works.functions.withdraw(0), registrant)
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert chain.w3.eth.get_balance(registrant) - before + gas == Web3.to_wei(0.4875, "ether")
    assert revert_reason(works.functions.withdraw(0), registrant).startswith(
        "WorkRegistryNothingOwed"
    )
    # A second payment: the registrant is owed only the new part (a partial withdrawal).
    chain.send(works.functions.pay(0), fan, value=Web3.to_wei(2, "ether"))
    assert works.functions.owedEth(0, registrant).call() == Web3.to_wei(0.975, "ether")
    # Fees go half to the treasury (the timelock), half to the node operators' rewards.
    treasury = chain.deployment.addresses["JamTimelock"]
    rewards = chain.c["NodeRewards"].address
    jam_before = token.functions.balanceOf(treasury).call()
    chain.send(works.functions.collectFees(), fan)
    assert chain.w3.eth.get_balance(treasury) == Web3.to_wei(0.0375, "ether")
    assert chain.w3.eth.get_balance(rewards) == Web3.to_wei(0.0375, "ether")
    assert token.functions.balanceOf(treasury).call() - jam_before == 5 * JAM
    assert token.functions.balanceOf(rewards).call() == 5 * JAM
    assert works.functions.operatorFeeShare().call() == [5000, rewards]


def test_a_work_needs_every_contributors_consent(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    registrant = chain.accounts[1]
    other, stranger = Account.create(), Account.create()
    contributors = [registrant, other.address]
    reg = registration(Web3.keccak(text="duet"), contributors, [6000, 4000])
    proof = attest(chain, reg.content_hash, contributors)
    forged = consent(chain, stranger, reg, registrant)
    reason = revert_reason(
        works.functions.register(reg.as_tuple(), [b"", forged], proof), registrant
    )
    assert reason == f"WorkRegistryNoConsent(contributor={other.address})"
    # Consent to a different split does not count either.
    other_split = consent(chain, other, replace(reg, shares=[5000, 5000]), registrant)
    assert revert_reason(
        works.functions.register(reg.as_tuple(), [b"", other_split], proof), registrant
    ).startswith("WorkRegistryNoConsent")
    uneven = replace(reg, shares=[6000, 3000])
    assert revert_reason(
        works.functions.register(uneven.as_tuple(), [b"", b""], proof), registrant
    ) in {
        f"WorkRegistryNoConsent(contributor={other.address})",
        "WorkRegistrySharesNotWhole(sum=9000)",
    }
    lopsided = replace(reg, contributors=[registrant], shares=[10000, 1])
    assert (
        revert_reason(works.functions.register(lopsided.as_tuple(), [b""], proof), registrant)
        == "WorkRegistryBadSplit()"
    )


def test_a_copied_stale_or_cancelled_consent_is_refused(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    registrant, copycat = chain.accounts[1], chain.accounts[2]
    bassist, singer = KEYS[3], KEYS[4]
    contributors = [bassist.address, singer.address]
    reg = registration(Web3.keccak(text="copied"), contributors, [5000, 5000])
    signatures = [consent(chain, k, reg, registrant) for k in (bassist, singer)]
    proof = attest(chain, reg.content_hash, contributors)
    # A copy of the fully co-signed registration, sent first by someone else: the consents
    # name the registrant, so it is refused.
    assert revert_reason(
        works.functions.register(reg.as_tuple(), signatures, proof), copycat
    ).startswith("WorkRegistryNoConsent")
    # Past its deadline.
    latest = chain.w3.eth.get_block("latest")["timestamp"]
    stale = replace(reg, deadline=latest + 60, nonce=7)
    stale_signatures = [consent(chain, k, stale, registrant) for k in (bassist, singer)]
    chain.advance(120)
    assert (
        revert_reason(
            works.functions.register(stale.as_tuple(), stale_signatures, proof), registrant
        )
        == f"WorkRegistryConsentExpired(deadline={latest + 60})"
    )
    # A contributor who changed their mind cancels the nonce they signed.
    chain.send(works.functions.cancelConsent(registrant, reg.nonce), singer.address)
    assert works.functions.nonceUsed(registrant, reg.nonce, singer.address).call()
    assert (
        revert_reason(works.functions.register(reg.as_tuple(), signatures, proof), registrant)
        == f"WorkRegistryNonceUsed(account={singer.address}, nonce=1)"
    )
    # A fresh nonce, fresh consents: registered, and the nonce is spent.
    fresh = replace(reg, nonce=8)
    register_work(chain, registrant, fresh, {bassist.address: bassist, singer.address: singer})
    assert works.functions.nonceUsed(registrant, 8, bassist.address).call()
    other = replace(fresh, content_hash=Web3.keccak(text="other take"))
    other_signatures = [consent(chain, k, other, registrant) for k in (bassist, singer)]
    assert (
        revert_reason(
            works.functions.register(
                other.as_tuple(), other_signatures, attest(chain, other.content_hash, contributors)
            ),
            registrant,
        )
        == f"WorkRegistryNonceUsed(account={registrant}, nonce=8)"
    )


def test_only_a_registered_nodes_attested_contributors_can_register_a_take(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    band, squatter = KEYS[3], KEYS[5]
    content = Web3.keccak(text="the band's take")
    # A squatter who knows the hash but has no attestation from a registered node.
    mine = registration(content, [squatter.address], [10000])
    self_attested = replace(mine, attester=squatter.address)
    assert (
        revert_reason(
            works.functions.register(
                self_attested.as_tuple(),
                [b""],
                attest(chain, content, [squatter.address], squatter),
            ),
            squatter.address,
        )
        == f"WorkRegistryNoProvenance(attester={squatter.address})"
    )
    # The registered node's attestation names the band, not the squatter.
    band_proof = attest(chain, content, [band.address])
    assert (
        revert_reason(
            works.functions.register(mine.as_tuple(), [b""], band_proof), squatter.address
        )
        == f"WorkRegistryNoProvenance(attester={ATTESTER.address})"
    )
    # A node that left the registry no longer attests.
    nodes = chain.c["NodeRegistry"]
    chain.send(nodes.functions.unbond(), ATTESTER.address)
    theirs = registration(content, [band.address], [10000])
    assert (
        revert_reason(works.functions.register(theirs.as_tuple(), [b""], band_proof), band.address)
        == f"WorkRegistryNoProvenance(attester={ATTESTER.address})"
    )


def test_withdraw_to_another_address(chain: Chain) -> None:
    works, token = chain.c["WorkRegistry"], chain.c["JamToken"]
    artist, cold = KEYS[3], Account.create()
    reg = registration(Web3.keccak(text="solo"), [artist.address], [10000])
    work = register_work(chain, artist.address, reg, {})
    chain.send(works.functions.pay(work), chain.accounts[4], value=Web3.to_wei(1, "ether"))
    chain.send(token.functions.approve(works.address, 100 * JAM), chain.accounts[4])
    chain.send(works.functions.payToken(work, 100 * JAM), chain.accounts[4])
    zero = "0x0000000000000000000000000000000000000000"
    assert revert_reason(works.functions.withdrawTo(work, zero), artist.address) == (
        "WorkRegistryZeroAddress()"
    )
    chain.send(works.functions.withdrawTo(work, cold.address), artist.address)
    chain.send(works.functions.withdrawTokenTo(work, cold.address), artist.address)
    assert chain.w3.eth.get_balance(cold.address) == Web3.to_wei(0.975, "ether")
    assert token.functions.balanceOf(cold.address).call() == Web3.to_wei(97.5, "ether")
    assert works.functions.owedEth(work, artist.address).call() == 0
    # Nobody else can withdraw the artist's share to themselves.
    assert revert_reason(
        works.functions.withdrawTo(work, chain.accounts[6]), chain.accounts[6]
    ).startswith("WorkRegistryNothingOwed")


def test_a_reentrant_recipient_is_paid_once(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    artifact = extra_artifact("ReentrantPayee")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = chain.send(factory.constructor(works.address), chain.accounts[3])
    attacker = chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    content = Web3.keccak(text="attack")
    chain.send(
        attacker.functions.registerAlone(
            content, ATTESTER.address, attest(chain, content, [attacker.address])
        ),
        chain.accounts[3],
    )
    # An honest work holds funds too: the attacker must not reach them.
    honest = chain.accounts[6]
    register_work(chain, honest, registration(Web3.keccak(text="honest"), [honest], [10000]), {})
    chain.send(works.functions.pay(1), chain.accounts[7], value=Web3.to_wei(5, "ether"))
    chain.send(works.functions.pay(0), chain.accounts[7], value=Web3.to_wei(1, "ether"))
    chain.send(attacker.functions.attack(), chain.accounts[3])
    assert chain.w3.eth.get_balance(attacker.address) == Web3.to_wei(0.975, "ether")
    assert attacker.functions.reentryAttempts().call() == 1
    assert attacker.functions.reentrySuccesses().call() == 0
    assert works.functions.owedEth(1, honest).call() == Web3.to_wei(4.875, "ether")
