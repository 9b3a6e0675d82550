"""A signing client for jamnet's contracts (used by the CLI and the node's faucet).

Transactions are signed locally with the caller's key (web3's SignAndSendRaw middleware) and
sent raw; before sending, each call is simulated so a revert comes back as the contract's
own error, decoded (``WorkRegistryNothingOwed(contributor=0x…)``), without paying gas.
"""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted
from web3.middleware import SignAndSendRawMiddlewareBuilder

from node.chain.deploy import Deployment
from node.chain.errors import decode_error
from node.errors import ChainError, InputError

JAM_DECIMALS = 18


def parse_amount(text: str, decimals: int = JAM_DECIMALS) -> int:
    """'12.5' → 12.5 × 10^decimals base units; refuses negatives, NaN and too many decimals."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InputError(f"{text!r} is not an amount") from None
    if not value.is_finite() or value <= 0:
        raise InputError(f"amount must be positive, got {text!r}")
    units = value * (10**decimals)
    if units != units.to_integral_value():
        raise InputError(f"{text!r} has more than {decimals} decimals")
    return int(units)


def format_amount(units: int, decimals: int = JAM_DECIMALS) -> str:
    """Base units → a short decimal string."""
    value = Decimal(units) / (10**decimals)
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fetch_chain_info(node_url: str) -> dict[str, Any]:
    """Ask a node where its chain and contracts are (``GET /api/chain``)."""
    url = node_url.rstrip("/") + "/api/chain"
    if not url.startswith(("http://", "https://")):
        raise InputError(f"node URL must be http(s), got {node_url!r}")
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - scheme checked
            info: dict[str, Any] = json.loads(reply.read())
    except (OSError, ValueError) as exc:
        raise ChainError(f"cannot ask {node_url} about its chain: {exc}") from None
    if not info.get("ready"):
        raise ChainError(f"the node at {node_url} runs without a chain (--chain off)")
    if not info.get("rpc_url"):
        raise ChainError("the node uses an external chain: pass --rpc-url and --deployment")
    return info


class ChainClient:
    """Bound contracts plus a signer."""

    def __init__(self, rpc_url: str, deployment: Deployment, account: LocalAccount | None) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self.account = account
        if account is not None:
            self.w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
            self.w3.eth.default_account = account.address
        self.deployment = deployment
        self.node_url = ""
        """Set when the chain was found through a node: reads can use its event index."""
        try:
            self.contracts = deployment.contracts(self.w3)
        except ChainError:
            raise
        self.token = self.contracts["JamToken"]
        self.governor = self.contracts["JamGovernor"]
        self.works = self.contracts["WorkRegistry"]
        self.nodes = self.contracts["NodeRegistry"]

    @classmethod
    def for_node(cls, node_url: str, account: LocalAccount | None) -> ChainClient:
        """Use the chain a node is on (its devnet, typically)."""
        info = fetch_chain_info(node_url)
        deployment = Deployment(
            chain_id=int(info["chain_id"]),
            block=int(info["block"]),
            addresses={k: Web3.to_checksum_address(v) for k, v in info["addresses"].items()},
            deployer="",
        )
        client = cls(str(info["rpc_url"]), deployment, account)
        client.node_url = node_url
        return client

    @property
    def address(self) -> str:
        """The signer's address."""
        if self.account is None:
            raise InputError("this needs a key (--keyfile)")
        return str(self.account.address)

    def send(self, call: Any, value: int = 0, what: str = "transaction") -> dict[str, Any]:
        """Simulate, then sign and send; wait for the receipt. Raises ``ChainError``."""
        tx = {"from": self.address, "value": value}
        try:
            call.call(tx)
        except ContractCustomError as exc:
            raise ChainError(f"{what} would fail: {decode_error(str(exc.data))}") from None
        except ContractLogicError as exc:
            raise ChainError(f"{what} would fail: {exc.message or exc}") from None
        try:
            tx_hash = call.transact(tx)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        except TimeExhausted:
            raise ChainError(f"{what} was sent but not mined within 120 s") from None
        except (ValueError, OSError) as exc:  # RPC errors: insufficient funds, nonce, ...
            raise ChainError(f"{what} could not be sent: {exc}") from None
        if receipt["status"] != 1:
            raise ChainError(f"{what} reverted (transaction {tx_hash.to_0x_hex()})")
        return dict(receipt)

    def contract(self, name: str) -> Contract:
        """A bound contract by name."""
        return self.contracts[name]
