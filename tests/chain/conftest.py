"""A real anvil devnet with jamnet's contracts deployed once; each test runs in a snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError
from web3.logs import DISCARD

from node.chain.consent import Registration, consent_message, provenance_message
from node.chain.deploy import Deployment, deploy
from node.chain.devnet import Devnet
from node.chain.errors import decode_error

MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()
KEYS = [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(10)]
"""The devnet's unlocked accounts, with their keys (anvil's default mnemonic)."""
ATTESTER = KEYS[8]
"""A node registered in NodeRegistry (stake and registration made once per devnet)."""
SETTLER = KEYS[7]
"""RoyaltyPool's first settler."""
FAR_DEADLINE = 2**40


@dataclass
class Chain:
    w3: Web3
    deployment: Deployment
    c: dict[str, Contract]
    accounts: list[str]

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    @contextmanager
    def governance(self) -> Iterator[str]:
        """Act as the timelock (impersonated, with ETH for gas), as a passed proposal would."""
        timelock = self.deployment.addresses["JamTimelock"]
        provider = self.w3.provider
        provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
        provider.make_request("anvil_setBalance", [timelock, hex(10**20)])  # type: ignore[arg-type]
        try:
            yield timelock
        finally:
            provider.make_request("anvil_stopImpersonatingAccount", [timelock])  # type: ignore[arg-type]

    def send(self, call, sender: str, value: int = 0):  # type: ignore[no-untyped-def]
        tx = call.transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        return receipt


def attest(
    chain: Chain, content: bytes, contributors: list[str], node: LocalAccount = ATTESTER
) -> bytes:
    """A registered node's provenance attestation for a take and its contributors."""
    works = chain.c["WorkRegistry"]
    message = provenance_message(chain.w3.eth.chain_id, works.address, content, contributors)
    signed = node.sign_message(message)
    assert works.functions.provenanceDigest(content, contributors).call() == signed.message_hash
    return bytes(signed.signature)


def consent(chain: Chain, account, registration: Registration, registrant: str) -> bytes:  # type: ignore[no-untyped-def]
    """A contributor's consent to ``registrant`` registering ``registration`` (checked against
    the contract's own digest)."""
    works = chain.c["WorkRegistry"]
    message = consent_message(chain.w3.eth.chain_id, works.address, registration, registrant)
    signed = account.sign_message(message)
    digest = works.functions.consentDigest(registration.as_tuple(), registrant).call()
    assert digest == signed.message_hash  # our typed data is what the contract expects
    return bytes(signed.signature)


def registration(
    content: bytes,
    contributors: list[str],
    shares: list[int],
    uri: str = "ipfs://w",
    nonce: int = 1,
    parents: tuple[int, ...] = (),
    derivative_bps: int = 0,
) -> Registration:
    """A registration attested by ``ATTESTER`` with a far deadline."""
    return Registration(
        content,
        uri,
        contributors,
        shares,
        FAR_DEADLINE,
        nonce,
        ATTESTER.address,
        parents,
        derivative_bps,
    )


def register_work(
    chain: Chain, registrant: str, reg: Registration, signers: dict[str, LocalAccount]
) -> int:
    """Register ``reg`` from ``registrant`` with the consents of ``signers`` (the registrant
    consents by sending); returns the work id."""
    works = chain.c["WorkRegistry"]
    signatures = [
        b"" if who == registrant else consent(chain, signers[who], reg, registrant)
        for who in reg.contributors
    ]
    receipt = chain.send(
        works.functions.register(
            reg.as_tuple(), signatures, attest(chain, reg.content_hash, reg.contributors)
        ),
        registrant,
    )
    events = works.events.WorkRegistered().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["workId"])


def revert_reason(call, sender: str, value: int = 0) -> str:  # type: ignore[no-untyped-def]
    """The decoded custom error a call reverts with (it must revert)."""
    with pytest.raises(ContractCustomError) as info:
        call.call({"from": sender, "value": value})
    return decode_error(info.value.data)


@pytest.fixture(scope="session")
def devnet() -> Iterator[tuple[Devnet, Web3, Deployment]]:
    with Devnet() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.url))
        accounts = list(w3.eth.accounts)
        deployment = deploy(w3, accounts[0], accounts[1:], settler=SETTLER.address)
        contracts = deployment.contracts(w3)
        stake = deployment.params["min_stake"]
        node = ATTESTER.address
        for call in (
            contracts["JamToken"].functions.approve(contracts["NodeRegistry"].address, stake),
            contracts["NodeRegistry"].functions.stake(stake),
            contracts["NodeRegistry"].functions.register(
                "12D3KooWAttester", "http://127.0.0.1:1", "{}"
            ),
        ):
            assert w3.eth.wait_for_transaction_receipt(call.transact({"from": node}))["status"] == 1
        yield chain, w3, deployment


@pytest.fixture
def chain(devnet: tuple[Devnet, Web3, Deployment]) -> Iterator[Chain]:
    _, w3, deployment = devnet
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield Chain(w3, deployment, deployment.contracts(w3), list(w3.eth.accounts))
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
