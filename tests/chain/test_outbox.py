"""The transaction outbox on real anvil: idempotent, survives RPC outages and restarts."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3RPCError

from node.chain.devnet import Devnet, free_port
from node.chain.outbox import Outbox
from tests.chain.conftest import Chain

ETH = 10**18


def fund(w3: Web3, address: str) -> None:
    w3.provider.make_request("anvil_setBalance", [address, hex(100 * ETH)])  # type: ignore[arg-type]


def drain(outbox: Outbox, w3: Web3, passes: int = 20) -> None:
    for _ in range(passes):
        if outbox.process(w3) == 0:
            return
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    raise AssertionError([e for e in outbox.entries() if e.state not in {"mined", "failed"}])


def test_same_key_is_sent_once_and_reverts_are_explained(chain: Chain, tmp_path: Path) -> None:
    account = Account.create()
    fund(chain.w3, account.address)
    outbox = Outbox(tmp_path / "outbox.sqlite3", account)
    try:
        to = Account.create().address
        first = outbox.enqueue("pay-royalty-1", to, "0x", ETH)
        again = outbox.enqueue("pay-royalty-1", to, "0x", 5 * ETH)  # a retry by the caller
        assert again == first and len(outbox.entries()) == 1
        drain(outbox, chain.w3)
        assert outbox.get("pay-royalty-1").state == "mined"
        outbox.enqueue("pay-royalty-1", to, "0x", ETH)
        drain(outbox, chain.w3)
        assert chain.w3.eth.get_balance(to) == ETH
        works = chain.c["WorkRegistry"]
        data = works.functions.withdraw(42)._encode_transaction_data()
        outbox.enqueue("withdraw-42", works.address, data)
        drain(outbox, chain.w3)
        failed = outbox.get("withdraw-42")
        assert failed.state == "failed" and failed.error == "WorkRegistryUnknownWork(workId=42)"
    finally:
        outbox.close()


def test_an_rpc_outage_and_a_crash_after_signing_lose_nothing_and_pay_once(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "anvil-state.json"
    account = Account.create()
    to = Account.create().address
    store = tmp_path / "outbox.sqlite3"
    with Devnet(state, port=port) as devnet:
        w3 = Web3(Web3.HTTPProvider(devnet.url))
        fund(w3, account.address)
        outbox = Outbox(store, account)
        outbox.enqueue("a", to, "0x", ETH)
        outbox.enqueue("b", to, "0x", 2 * ETH)
        # A crash right after "b" was signed and stored, before it was sent:
        outbox._sign(w3, outbox.get("a"))
        outbox._sign(w3, outbox.get("b"))
        assert {e.state for e in outbox.entries()} == {"signed"}
        outbox.close()
    # The chain is down: a pass changes nothing but counts the attempt (of the first entry:
    # the later one waits behind it).
    outbox = Outbox(store, account)
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 2}))
    assert outbox.process(w3) == 2
    entries = outbox.entries()
    assert [(e.attempts, e.state) for e in entries] == [(1, "signed"), (0, "signed")]
    assert entries[0].error
    # The chain is back (same state): the same signed bytes go out, once.
    with Devnet(state, port=port) as devnet:
        w3 = Web3(Web3.HTTPProvider(devnet.url))
        drain(outbox, w3)
        assert [e.state for e in outbox.entries()] == ["mined", "mined"]
        assert w3.eth.get_balance(to) == 3 * ETH
        # Re-sending a mined transaction's bytes is refused by the chain: no double payment.
        raw = outbox._db.execute("SELECT raw_tx FROM outbox WHERE key = 'a'").fetchone()[0]
        with contextlib.suppress(ValueError, Web3RPCError):
            w3.eth.send_raw_transaction(raw)
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert w3.eth.get_balance(to) == 3 * ETH
    outbox.close()


def test_a_later_entry_waits_for_the_one_it_depends_on(chain: Chain) -> None:
    # Stake after approve: estimating the stake before the approval is mined would fail.
    account = Account.create()
    token, nodes = chain.c["JamToken"], chain.c["NodeRegistry"]
    fund(chain.w3, account.address)
    chain.send(token.functions.transfer(account.address, 10_000 * ETH), chain.accounts[1])
    chain.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            outbox = Outbox(Path(tmp) / "outbox.sqlite3", account)
            approve = token.functions.approve(nodes.address, 10_000 * ETH)
            outbox.enqueue("approve", token.address, approve._encode_transaction_data())
            stake = nodes.functions.stake(10_000 * ETH)._encode_transaction_data()
            outbox.enqueue("stake", nodes.address, stake)
            assert outbox.process(chain.w3) == 2
            assert [e.state for e in outbox.entries()] == ["sent", "queued"]
            chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            outbox.process(chain.w3)
            chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            assert outbox.process(chain.w3) == 0
            assert [e.state for e in outbox.entries()] == ["mined", "mined"]
            outbox.close()
    finally:
        chain.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    assert nodes.functions.operator(account.address).call()[0] == 10_000 * ETH
