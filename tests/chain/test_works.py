"""Royalty splits on anvil: consent, payments in ETH and JAM, fees, withdrawals, attacks."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3

from node.chain.build import extra_artifact
from node.chain.consent import consent_message
from node.chain.deploy import JAM
from tests.chain.conftest import Chain, revert_reason


def consent(chain: Chain, account, content: bytes, uri: str, contributors, shares) -> bytes:  # type: ignore[no-untyped-def]
    works = chain.c["WorkRegistry"]
    message = consent_message(
        chain.w3.eth.chain_id, works.address, content, uri, contributors, shares
    )
    signed = account.sign_message(message)
    digest = works.functions.consentDigest(content, uri, contributors, shares).call()
    assert digest == signed.message_hash  # our typed data is what the contract expects
    return bytes(signed.signature)


def test_register_pay_in_eth_and_jam_and_withdraw(chain: Chain) -> None:
    works, token = chain.c["WorkRegistry"], chain.c["JamToken"]
    registrant = chain.accounts[1]
    guitarist, drummer = Account.create(), Account.create()
    contributors = [registrant, guitarist.address, drummer.address]
    shares = [5000, 3000, 2000]
    content, uri = Web3.keccak(text="take 3"), "ipfs://bafy-take-3"
    signatures = [
        b"",
        *(consent(chain, a, content, uri, contributors, shares) for a in (guitarist, drummer)),
    ]
    chain.send(works.functions.register(content, uri, contributors, shares, signatures), registrant)
    assert works.functions.workCount().call() == 1
    assert revert_reason(
        works.functions.register(content, uri, contributors, shares, signatures), registrant
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
    # Fees go to the treasury (the timelock).
    treasury = chain.deployment.addresses["JamTimelock"]
    jam_before = token.functions.balanceOf(treasury).call()
    chain.send(works.functions.collectFees(), fan)
    assert chain.w3.eth.get_balance(treasury) == Web3.to_wei(0.075, "ether")
    assert token.functions.balanceOf(treasury).call() - jam_before == 10 * JAM


def test_a_work_needs_every_contributors_consent(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    registrant = chain.accounts[1]
    other, stranger = Account.create(), Account.create()
    content, uri = Web3.keccak(text="duet"), "ipfs://duet"
    contributors, shares = [registrant, other.address], [6000, 4000]
    forged = consent(chain, stranger, content, uri, contributors, shares)
    reason = revert_reason(
        works.functions.register(content, uri, contributors, shares, [b"", forged]), registrant
    )
    assert reason == f"WorkRegistryNoConsent(contributor={other.address})"
    # Consent to a different split does not count either.
    other_split = consent(chain, other, content, uri, contributors, [5000, 5000])
    assert revert_reason(
        works.functions.register(content, uri, contributors, shares, [b"", other_split]), registrant
    ).startswith("WorkRegistryNoConsent")
    assert revert_reason(
        works.functions.register(content, uri, contributors, [6000, 3000], [b"", b""]), registrant
    ) in {
        f"WorkRegistryNoConsent(contributor={other.address})",
        "WorkRegistrySharesNotWhole(sum=9000)",
    }
    assert (
        revert_reason(
            works.functions.register(content, uri, [registrant], [10000, 1], [b""]), registrant
        )
        == "WorkRegistryBadSplit()"
    )


def test_a_reentrant_recipient_is_paid_once(chain: Chain) -> None:
    works = chain.c["WorkRegistry"]
    artifact = extra_artifact("ReentrantPayee")
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = chain.send(factory.constructor(works.address), chain.accounts[3])
    attacker = chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    chain.send(attacker.functions.registerAlone(Web3.keccak(text="attack")), chain.accounts[3])
    # An honest work holds funds too: the attacker must not reach them.
    honest = chain.accounts[6]
    chain.send(
        works.functions.register(Web3.keccak(text="honest"), "u", [honest], [10000], [b""]), honest
    )
    chain.send(works.functions.pay(1), chain.accounts[7], value=Web3.to_wei(5, "ether"))
    chain.send(works.functions.pay(0), chain.accounts[7], value=Web3.to_wei(1, "ether"))
    chain.send(attacker.functions.attack(), chain.accounts[3])
    assert chain.w3.eth.get_balance(attacker.address) == Web3.to_wei(0.975, "ether")
    assert attacker.functions.reentryAttempts().call() == 1
    assert attacker.functions.reentrySuccesses().call() == 0
    assert works.functions.owedEth(1, honest).call() == Web3.to_wei(4.875, "ether")
