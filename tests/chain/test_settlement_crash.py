"""A node killed while settling a royalty period pays nothing twice: a real ChainService on
its own devnet, the node's outbox, RoyaltyPool and WorkRegistry; the "kill" drops every
object and reopens the same files."""

from __future__ import annotations

import json
from pathlib import Path

from web3 import Web3

from node.chain.consent import Registration, provenance_message
from node.chain.outbox import Outbox
from node.chain.service import ChainService
from node.listens import ListenBook
from node.royalties import Royalties
from tests.conftest import node_config

ETH = 10**18


async def test_a_kill_between_settling_and_claiming_pays_nothing_twice(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    chain = ChainService(config)
    await chain.start()
    try:
        assert chain.w3 is not None and chain.deployment is not None and chain.account is not None
        w3, node = chain.w3, chain.account
        await chain.register_devnet_node("12D3KooWSettle", "http://127.0.0.1:1")
        c = chain.deployment.contracts(w3)
        works, pool = c["WorkRegistry"], c["RoyaltyPool"]
        artist = w3.eth.accounts[1]
        ids = []
        for i in range(3):
            content = bytes(Web3.keccak(text=f"settle work {i}"))
            reg = Registration(content, "u", [artist], [10000], 2**40, i, node.address)
            proof = node.sign_message(
                provenance_message(w3.eth.chain_id, works.address, content, [artist])
            )
            call = works.functions.register(reg.as_tuple(), [b""], bytes(proof.signature))
            w3.eth.wait_for_transaction_receipt(call.transact({"from": artist}))
            ids.append(works.functions.workCount().call() - 1)
        w3.eth.wait_for_transaction_receipt(
            pool.functions.fund().transact({"from": w3.eth.accounts[2], "value": 4 * ETH})
        )
        loop = tmp_path / "loop"
        loop.mkdir()
        listens = ListenBook(loop / "listens.sqlite3", w3.eth.chain_id)
        royalties = Royalties(loop, chain, listens)
        payouts = [{"work_id": w, "eth": str((w + 1) * ETH // 2), "token": "0"} for w in ids]
        rollup = {"payouts": payouts, "receipts": 6, "plays": {}, "paid": {}, "dust": {}}
        royalties._db.execute("UPDATE periods SET state='closed' WHERE id=1")
        royalties._set(1, "rolled", rollup=json.dumps(rollup))
        # The settlement goes out, but is not mined before the "kill".
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setIntervalMining", [0])  # type: ignore[arg-type]
        row = dict(royalties._db.execute("SELECT * FROM periods WHERE id=1").fetchone())
        assert royalties._advance(row) is False
        assert royalties.period(1)["state"] == "settling"
        assert chain.outbox is not None and chain.outbox.get("settle:1").state == "sent"
        royalties.close()
        listens.close()
        chain.outbox.close()
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

        # The restart: new objects over the same files resume and finish.
        chain.outbox = Outbox(config.data_path / "chain" / "outbox.sqlite3", node)
        listens = ListenBook(loop / "listens.sqlite3", w3.eth.chain_id)
        royalties = Royalties(loop, chain, listens)
        royalties.kick()
        await royalties.drain()
        assert royalties.period(1)["state"] == "settled"
        totals = [works.functions.work(w).call()[5] for w in ids]
        # A second kill after the claims were mined but before "settled" was saved: the
        # resumed worker finds every claim mined and sends nothing.
        royalties._set(1, "settling")
        count = w3.eth.get_transaction_count(node.address)
        royalties.kick()
        await royalties.drain()
        assert w3.eth.get_transaction_count(node.address) == count, "nothing sent again"
        assert [works.functions.work(w).call()[5] for w in ids] == totals
        for w, p in zip(ids, payouts, strict=True):
            assert pool.functions.isClaimed(1, w).call()
            assert totals[ids.index(w)] == int(p["eth"]) - int(p["eth"]) * 250 // 10_000
        settled = pool.functions.period(1).call()
        paid = sum(int(p["eth"]) for p in payouts)
        assert settled[1] == settled[3] == paid
        assert (
            pool.functions.unallocated().call()[0] == 4 * ETH * 9 // 10 - paid
        )  # less the operators' 10 %
        royalties.close()
        listens.close()
    finally:
        await chain.stop()
