"""A real anvil devnet with jamnet's contracts deployed once; each test runs in a snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from node.chain.deploy import Deployment, deploy
from node.chain.devnet import Devnet
from node.chain.errors import decode_error


@dataclass
class Chain:
    w3: Web3
    deployment: Deployment
    c: dict[str, Contract]
    accounts: list[str]

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def send(self, call, sender: str, value: int = 0):  # type: ignore[no-untyped-def]
        tx = call.transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        return receipt


def revert_reason(call, sender: str) -> str:  # type: ignore[no-untyped-def]
    """The decoded custom error a call reverts with (it must revert)."""
    with pytest.raises(ContractCustomError) as info:
        call.call({"from": sender})
    return decode_error(info.value.data)


@pytest.fixture(scope="session")
def devnet() -> Iterator[tuple[Devnet, Web3, Deployment]]:
    with Devnet() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.url))
        accounts = list(w3.eth.accounts)
        deployment = deploy(w3, accounts[0], accounts[1:])
        yield chain, w3, deployment


@pytest.fixture
def chain(devnet: tuple[Devnet, Web3, Deployment]) -> Iterator[Chain]:
    _, w3, deployment = devnet
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        yield Chain(w3, deployment, deployment.contracts(w3), list(w3.eth.accounts))
    finally:
        w3.provider.make_request("evm_revert", [snapshot])  # type: ignore[arg-type]
