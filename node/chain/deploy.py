"""Deploying jamnet's contracts and reading a deployment file.

Order: timelock (treasury) → JAM token (genesis supply to the timelock less a stated
distribution, each holder self-delegated: the local test accounts on the devnet, the
holders a genesis file names on a testnet) → governor → the timelock's proposer/canceller
roles to the governor, and the deployer's admin role renounced → NodeRegistry → NodeRewards
(operators' rewards by served quality) → WorkRegistry (its
provenance attesters are NodeRegistry's nodes) → RoyaltyPool (paying into WorkRegistry; its
first settler is the node that deploys, governance appoints others) → Licensing (fixed-price
licences and exclusive auctions, paying into WorkRegistry). The
deployment file records the chain id, every address and the first block, so the node can
find (and index from) it again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from node.chain.build import CONTRACT_NAMES, build
from node.errors import ChainError

JAM = 10**18
CONTRACTS = CONTRACT_NAMES
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True)
class DeployParams:
    """Genesis parameters (governance can change every one of them later)."""

    supply: int = 100_000_000 * JAM
    devnet_allocation: int = 1_000_000 * JAM
    """Each local test account's genesis JAM on the devnet."""
    timelock_delay_s: int = 60
    voting_delay_s: int = 60
    voting_period_s: int = 600
    proposal_threshold: int = 1_000 * JAM
    protocol_fee_bps: int = 250
    derivative_cap_bps: int = 2000
    """The most a work may take from each derivative (20 %; governance may raise it to 50 %)."""
    reward_period_s: int = 86_400
    """NodeRewards' period: operators report and are paid per day."""
    operator_pool_share_bps: int = 1000
    """Node operators' share of what funds the royalty pool (10 %)."""
    operator_fee_share_bps: int = 5000
    """Node operators' share of collected protocol fees (half; the rest to the treasury)."""
    min_stake: int = 10_000 * JAM
    unbond_delay_s: int = 3600


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live."""

    chain_id: int
    block: int
    addresses: dict[str, str]
    deployer: str
    params: dict[str, int] = field(default_factory=dict)
    code: str = ""
    """``code_hash()`` of the contracts deployed ("" in files from before it was recorded)."""

    def save(self, path: Path) -> None:
        """Write atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read and check a deployment file."""
        try:
            data = json.loads(path.read_text())
            deployment = cls(
                chain_id=int(data["chain_id"]),
                block=int(data["block"]),
                addresses={
                    str(k): Web3.to_checksum_address(v) for k, v in data["addresses"].items()
                },
                deployer=str(data["deployer"]),
                params={str(k): int(v) for k, v in data.get("params", {}).items()},
                code=str(data.get("code", "")),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ChainError(f"deployment file {path} is missing or invalid: {exc}") from None
        missing = set(CONTRACTS) - set(deployment.addresses)
        if missing:
            raise ChainError(f"deployment file {path} lacks {sorted(missing)[0]}")
        return deployment

    def contracts(self, w3: Web3) -> dict[str, Contract]:
        """Bound contract objects."""
        artifacts = build()
        return {
            name: w3.eth.contract(
                address=Web3.to_checksum_address(address), abi=artifacts[name].abi
            )
            for name, address in self.addresses.items()
        }

    def is_live(self, w3: Web3) -> bool:
        """Whether this chain has this deployment (code at every address, same chain id)."""
        if w3.eth.chain_id != self.chain_id:
            return False
        return all(
            len(w3.eth.get_code(Web3.to_checksum_address(a))) > 0 for a in self.addresses.values()
        )


def code_hash() -> str:
    """One hash of every deployed contract's creation code, as built now: a deployment made
    from other code (an older release's contracts under the same names) has another."""
    artifacts = build()
    parts = [f"{name}:{artifacts[name].bytecode}" for name in sorted(CONTRACTS)]
    return Web3.keccak(text="\n".join(parts)).to_0x_hex()


def _deploy(w3: Web3, sender: str, name: str, *args: Any) -> Contract:
    artifact = build()[name]
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise ChainError(f"deploying {name} failed (transaction {tx_hash.to_0x_hex()})")
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def _wait(w3: Web3, tx_hash: Any, what: str) -> None:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1:
        raise ChainError(f"{what} failed (transaction {tx_hash.to_0x_hex()})")


@dataclass(frozen=True)
class Genesis:
    """A testnet's genesis: who holds (and so votes with) what, and the parameters."""

    holders: dict[str, int]
    """Address → JAM base units, self-delegated at genesis."""
    params: DeployParams


def load_genesis(path: Path) -> Genesis:
    """Read a genesis file: ``{"holders": {"0x…": "4000000", …}, "params": {…}}`` (amounts
    in JAM; ``params`` optional, any DeployParams field, token amounts in JAM)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ChainError(f"cannot read the genesis file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("holders"), dict):
        raise ChainError(f'{path}: needs a "holders" object of address → JAM')
    unknown = set(data) - {"holders", "params"}
    if unknown:
        raise ChainError(f"{path}: unknown field {sorted(unknown)[0]!r}")
    holders: dict[str, int] = {}
    for address, amount in data["holders"].items():
        if not Web3.is_address(address):
            raise ChainError(f"{path}: {address!r} is not an address")
        holders[Web3.to_checksum_address(address)] = _jam(amount, f"holders[{address}]", path)
    if not holders:
        raise ChainError(f"{path}: a genesis needs at least one holder, or nobody can govern")
    raw = data.get("params", {})
    fields = DeployParams.__dataclass_fields__
    if not isinstance(raw, dict) or set(raw) - set(fields):
        raise ChainError(f"{path}: params may set {', '.join(sorted(fields))}")
    in_jam = {"supply", "devnet_allocation", "proposal_threshold", "min_stake"}
    values = {
        key: _jam(value, key, path) if key in in_jam else _whole(value, key, path)
        for key, value in raw.items()
    }
    params = DeployParams(**values)
    total = sum(holders.values())
    if total > params.supply:
        raise ChainError(
            f"{path}: the holders get {total / JAM:g} JAM of a {params.supply / JAM:g} supply"
        )
    return Genesis(holders, params)


def _jam(value: object, name: str, path: Path) -> int:
    try:
        amount = Decimal(str(value)) * JAM
    except InvalidOperation:
        raise ChainError(f"{path}: {name} must be an amount of JAM") from None
    if isinstance(value, bool) or not amount.is_finite() or amount <= 0 or amount != int(amount):
        raise ChainError(f"{path}: {name} must be a positive amount of JAM (18 decimals)")
    return int(amount)


def _whole(value: object, name: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChainError(f"{path}: {name} must be a whole number")
    return value


def deploy(
    w3: Web3,
    deployer: str,
    devnet_accounts: Sequence[str],
    params: DeployParams | None = None,
    settler: str | None = None,
    holders: Mapping[str, int] | None = None,
) -> Deployment:
    """Deploy everything from ``deployer`` (an account ``w3`` can send from); ``settler``
    is RoyaltyPool's first settler (the node's own account), or none. The genesis holders
    are ``holders`` (address → base units) when given, else each of ``devnet_accounts``
    with ``params.devnet_allocation``."""
    p = params or DeployParams()
    if holders is None:
        holders = dict.fromkeys(devnet_accounts, p.devnet_allocation)
    first_block = w3.eth.block_number + 1
    zero = ZERO_ADDRESS
    timelock = _deploy(w3, deployer, "JamTimelock", p.timelock_delay_s, [], [zero], deployer)
    token = _deploy(
        w3,
        deployer,
        "JamToken",
        timelock.address,
        p.supply,
        list(holders),
        list(holders.values()),
    )
    governor = _deploy(
        w3,
        deployer,
        "JamGovernor",
        token.address,
        timelock.address,
        p.voting_delay_s,
        p.voting_period_s,
        p.proposal_threshold,
    )
    for role in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
        role_id = getattr(timelock.functions, role)().call()
        _wait(
            w3,
            timelock.functions.grantRole(role_id, governor.address).transact({"from": deployer}),
            role,
        )
    admin = timelock.functions.DEFAULT_ADMIN_ROLE().call()
    _wait(
        w3,
        timelock.functions.renounceRole(admin, deployer).transact({"from": deployer}),
        "renounce",
    )
    nodes = _deploy(
        w3,
        deployer,
        "NodeRegistry",
        token.address,
        timelock.address,
        timelock.address,
        p.min_stake,
        p.unbond_delay_s,
    )
    rewards = _deploy(
        w3,
        deployer,
        "NodeRewards",
        token.address,
        nodes.address,
        timelock.address,
        p.reward_period_s,
    )
    works = _deploy(
        w3,
        deployer,
        "WorkRegistry",
        token.address,
        nodes.address,
        timelock.address,
        timelock.address,
        p.protocol_fee_bps,
        p.derivative_cap_bps,
        rewards.address,
        p.operator_fee_share_bps,
    )
    pool = _deploy(
        w3,
        deployer,
        "RoyaltyPool",
        token.address,
        works.address,
        timelock.address,
        settler or zero,
        rewards.address,
        p.operator_pool_share_bps,
    )
    licensing = _deploy(w3, deployer, "Licensing", works.address)
    return Deployment(
        chain_id=w3.eth.chain_id,
        block=first_block,
        addresses={
            "JamToken": token.address,
            "JamTimelock": timelock.address,
            "JamGovernor": governor.address,
            "NodeRegistry": nodes.address,
            "NodeRewards": rewards.address,
            "WorkRegistry": works.address,
            "RoyaltyPool": pool.address,
            "Licensing": licensing.address,
        },
        deployer=deployer,
        params=asdict(p),
        code=code_hash(),
    )
