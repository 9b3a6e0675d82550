"""Gas used by jamnet's contract operations, measured on a fresh anvil devnet.

Registers works with 2, 10 and 50 contributors (each consenting by EIP-712 signature, a
registered node attesting provenance), pays
works with 2 and 50 contributors (a payment must cost the same for any number), withdraws,
runs a governance proposal through propose → castVote → queue → execute, and stakes and
registers a node. Gas is from the transaction receipts (deterministic for a given build).

Progress goes to stderr; one JSON object is the last line of stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.chain.consent import Registration, consent_message, provenance_message
from node.chain.deploy import JAM, deploy
from node.chain.devnet import Devnet

Account.enable_unaudited_hdwallet_features()
ATTESTER = Account.from_mnemonic(
    "test test test test test test test test test test test junk", account_path="m/44'/60'/0'/0/8"
)
"""An unlocked devnet account whose key we know: it registers a node and attests takes."""


def _send(w3: Web3, call: Any, sender: str, value: int = 0) -> int:
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "value": value}))
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction failed: {receipt}")
    return int(receipt["gasUsed"])


def _register(w3: Web3, works: Any, registrant: str, count: int) -> tuple[int, int]:
    others = [Account.create() for _ in range(count - 1)]
    who = [registrant] + [a.address for a in others]
    shares = [10000 // count] * count
    shares[0] += 10000 - sum(shares)
    content = bytes(Web3.keccak(text=f"work with {count}"))
    reg = Registration(content, f"ipfs://work-{count}", who, shares, 2**40, count, ATTESTER.address)
    chain_id = w3.eth.chain_id
    signatures = [b""] + [
        bytes(a.sign_message(consent_message(chain_id, works.address, reg, registrant)).signature)
        for a in others
    ]
    attestation = ATTESTER.sign_message(provenance_message(chain_id, works.address, content, who))
    gas = _send(
        w3,
        works.functions.register(reg.as_tuple(), signatures, bytes(attestation.signature)),
        registrant,
    )
    return gas, int(works.functions.workCount().call()) - 1


def main() -> None:
    result: dict[str, Any] = {}
    with Devnet() as chain:
        w3 = Web3(Web3.HTTPProvider(chain.url))
        accounts = list(w3.eth.accounts)
        deployment = deploy(w3, accounts[0], accounts[1:])
        c = deployment.contracts(w3)
        works, token, governor, nodes = (
            c["WorkRegistry"],
            c["JamToken"],
            c["JamGovernor"],
            c["NodeRegistry"],
        )
        alice, payer = accounts[1], accounts[2]
        _send(w3, token.functions.approve(nodes.address, 10_000 * JAM), ATTESTER.address)
        _send(w3, nodes.functions.stake(10_000 * JAM), ATTESTER.address)
        _send(w3, nodes.functions.register("12D3KooWAttester", "http://a", "{}"), ATTESTER.address)
        print("[gas] works …", file=sys.stderr)
        ids = {}
        for count in (2, 10, 50):
            result[f"register_{count}"], ids[count] = _register(w3, works, alice, count)
        for count in (2, 50):
            _send(
                w3, works.functions.pay(ids[count]), payer, value=10**18
            )  # first payment warms storage
            result[f"pay_{count}"] = _send(w3, works.functions.pay(ids[count]), payer, value=10**18)
        _send(w3, token.functions.approve(works.address, 10**24), payer)
        result["pay_token_2"] = _send(w3, works.functions.payToken(ids[2], 100 * JAM), payer)
        result["withdraw"] = _send(w3, works.functions.withdraw(ids[2]), alice)
        result["withdraw_token"] = _send(w3, works.functions.withdrawToken(ids[2]), alice)
        print("[gas] governance …", file=sys.stderr)
        voters = accounts[1:6]
        for voter in voters:
            _send(w3, token.functions.delegate(voter), voter)
        w3.provider.make_request("evm_increaseTime", [1])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        calldata = works.functions.setProtocolFee(300)._encode_transaction_data()
        args = ([works.address], [0], [calldata])
        description = "Fee to 3 %"
        result["propose"] = _send(w3, governor.functions.propose(*args, description), alice)
        digest = Web3.keccak(text=description)
        proposal = governor.functions.hashProposal(*args, digest).call()
        w3.provider.make_request("evm_increaseTime", [61])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        votes = [_send(w3, governor.functions.castVote(proposal, 1), v) for v in voters]
        result["cast_vote"] = votes[-1]
        w3.provider.make_request("evm_increaseTime", [601])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        result["queue"] = _send(w3, governor.functions.queue(*args, digest), alice)
        w3.provider.make_request("evm_increaseTime", [61])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        result["execute"] = _send(w3, governor.functions.execute(*args, digest), alice)
        print("[gas] operators …", file=sys.stderr)
        operator = accounts[3]
        _send(w3, token.functions.approve(nodes.address, 10**24), operator)
        result["stake"] = _send(w3, nodes.functions.stake(10_000 * JAM), operator)
        result["register_node"] = _send(
            w3,
            nodes.functions.register(
                "12D3KooWGasBench", "https://node.example:8443", '{"region":"eu"}'
            ),
            operator,
        )
    result["pay_50_vs_2"] = round(result["pay_50"] / result["pay_2"], 4)
    result["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
