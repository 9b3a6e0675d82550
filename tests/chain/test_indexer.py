"""The event indexer on anvil: every event once, resumes after a restart, resets on redeploy."""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from node.chain.deploy import JAM, Deployment
from node.chain.indexer import Indexer
from tests.chain.conftest import Chain, register_work, registration


def test_indexes_every_event_once_and_resumes(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite3"
    token, works = chain.c["JamToken"], chain.c["WorkRegistry"]
    indexer = Indexer(path, chain.w3, chain.deployment, chain.c)
    first = indexer.poll()
    assert first > 0, "deployment emitted events (role grants, transfers, delegations)"
    assert indexer.poll() == 0
    alice = chain.accounts[1]
    register_work(
        chain, alice, registration(Web3.keccak(text="indexed"), [alice], [10000], uri="u"), {}
    )
    chain.send(works.functions.pay(0), chain.accounts[2], value=10**18)
    indexer.close()
    # A restart resumes from the cursor: only the new events come in.
    indexer = Indexer(path, chain.w3, chain.deployment, chain.c)
    assert indexer.poll() == 2
    paid = indexer.events("WorkRegistry", "WorkPaid")
    assert len(paid) == 1 and paid[0]["args"]["amount"] == str(10**18)
    assert indexer.events("WorkRegistry", "WorkRegistered")[0]["args"]["metadataURI"] == "u"
    chain.send(token.functions.transfer(chain.accounts[3], 5 * JAM), alice)
    # Transfer, and both genesis holders' votes moving (DelegateVotesChanged twice).
    assert indexer.poll() == 3
    assert len(indexer.events("JamToken", "DelegateVotesChanged")) >= 2
    assert indexer.events(name="Transfer", limit=1)[0]["args"]["value"] == str(5 * JAM)
    indexer.close()
    # Another deployment (a reset devnet) starts a fresh index.
    other = Deployment(
        chain_id=chain.deployment.chain_id,
        block=chain.w3.eth.block_number + 1,
        addresses={**chain.deployment.addresses, "JamToken": chain.accounts[9]},
        deployer="",
    )
    fresh = Indexer(path, chain.w3, other, chain.c)
    assert fresh.events() == [] and fresh.poll() == 0
    fresh.close()
