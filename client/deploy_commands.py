"""`jamnet chain deploy`: jamnet's contracts on an external chain (a public testnet, or any
JSON-RPC endpoint), with a genesis that can govern itself.

The devnet the node embeds deploys by itself. A testnet needs someone to pay for the
deployment (a key with testnet ETH) and to say who holds the first voting power: a genesis
file, because a token whose whole supply sits in the treasury can never pass a proposal
(nobody has votes, and only a proposal moves the treasury). The output is the deployment
file nodes take with ``--rpc-url URL --deployment FILE``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from web3 import Web3
from web3.middleware import SignAndSendRawMiddlewareBuilder

from node.chain.client import format_amount
from node.chain.deploy import JAM, deploy, load_genesis
from node.errors import ChainError, InputError
from node.keys import load_or_create_key

QUORUM_PERCENT = 4
"""JamGovernor's quorum: 4 % of the supply (contracts/src/JamGovernor.sol)."""


def chain_deploy(args: argparse.Namespace) -> int:
    """Deploy from the keyfile's account; write the deployment file; say who can govern."""
    genesis = load_genesis(Path(args.genesis))
    params = genesis.params
    out = Path(args.out)
    if out.exists() and not args.force:
        raise InputError(f"{out} exists: a chain has one deployment (--force to replace it)")
    account = load_or_create_key(Path(args.keyfile))
    w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": 60}))
    try:
        chain_id = w3.eth.chain_id
        balance = w3.eth.get_balance(account.address)
    except Exception as exc:
        raise ChainError(f"cannot reach the chain at {args.rpc_url}: {exc}") from None
    if balance == 0:
        raise ChainError(
            f"the deployer {account.address} has no ETH on chain {chain_id}: fund it from the "
            "testnet's faucet (a deployment costs about 0.05 ETH at 5 gwei)"
        )
    quorum = params.supply * QUORUM_PERCENT // 100
    voting = sum(genesis.holders.values())
    if voting < quorum:
        print(
            f"warning: the genesis holders have {format_amount(voting)} JAM of votes, below "
            f"the quorum of {format_amount(quorum)}: they must be joined by others to pass "
            "anything",
        )
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    w3.eth.default_account = account.address
    settler = Web3.to_checksum_address(args.settler) if args.settler else account.address
    print(f"deploying to chain {chain_id} from {account.address} …", flush=True)
    deployment = deploy(w3, account.address, [], params, settler=settler, holders=genesis.holders)
    deployment.save(out)
    print(f"deployment written to {out}")
    for name, address in deployment.addresses.items():
        print(f"  {name:<13} {address}")
    print("genesis voting power (each holder delegated to themselves):")
    for holder, amount in genesis.holders.items():
        print(f"  {holder}  {format_amount(amount)} JAM")
    print(
        f"treasury (the timelock): {format_amount(params.supply - voting)} JAM, moved only by "
        "proposals\n"
        f"quorum {format_amount(quorum)} JAM · proposal threshold "
        f"{format_amount(params.proposal_threshold)} JAM · voting delay "
        f"{params.voting_delay_s} s · voting period {params.voting_period_s} s · timelock "
        f"{params.timelock_delay_s} s · operator minimum stake {params.min_stake // JAM} JAM\n"
        f"start a node on it: jamnet node --rpc-url {args.rpc_url} --deployment {out}"
    )
    return 0
