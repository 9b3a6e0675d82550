"""`jamnet chain deploy` on a chain the node did not start: an anvil whose accounts hold no
JAM (no devnet allocation), a deployer key that only has ETH, and a genesis file naming
three holders. The genesis can govern: they propose, vote, queue and execute a change."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from node.chain.deploy import JAM, Deployment
from node.chain.devnet import Devnet
from node.cli import main
from node.keys import load_or_create_key

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def bare_chain() -> Iterator[tuple[str, Web3]]:
    with Devnet() as chain:
        yield chain.url, Web3(Web3.HTTPProvider(chain.url))


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _key(w3: Web3, path: Path, eth: float) -> str:
    """A keystore at ``path`` whose account a funded anvil account sends ``eth`` ETH."""
    account = load_or_create_key(path, password="")
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction(
            {"from": w3.eth.accounts[9], "to": account.address, "value": Web3.to_wei(eth, "ether")}
        )
    )
    return str(account.address)


def _advance(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_a_testnet_genesis_governs_itself(
    bare_chain: tuple[str, Web3],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, w3 = bare_chain
    monkeypatch.setenv("JAMNET_KEY_PASSWORD", "")
    holders = {name: _key(w3, tmp_path / f"{name}.json", 1) for name in ("alice", "bob", "carol")}
    genesis = tmp_path / "genesis.json"
    out = tmp_path / "deployment.json"

    # A deployer without ETH is told what to do; a genesis below quorum is warned about.
    broke = tmp_path / "broke.json"
    load_or_create_key(broke, password="")
    genesis.write_text(json.dumps({"holders": {holders["alice"]: "10"}}))
    assert main(["chain", "deploy", "--rpc-url", url, "--genesis", str(genesis),
                 "--keyfile", str(broke), "--out", str(out)]) == 2  # fmt: skip
    assert "has no ETH" in capsys.readouterr().err
    genesis.write_text(json.dumps({"holders": {"0x12": "10"}}))
    assert main(["chain", "deploy", "--rpc-url", url, "--genesis", str(genesis),
                 "--keyfile", str(broke), "--out", str(out)]) == 2  # fmt: skip
    assert "is not an address" in capsys.readouterr().err

    genesis.write_text(
        json.dumps(
            {
                "holders": {
                    holders["alice"]: "2500000",
                    holders["bob"]: "1500000",
                    holders["carol"]: "1000000",
                },
                "params": {"voting_delay_s": 30, "voting_period_s": 300, "timelock_delay_s": 60},
            }
        )
    )
    deployer = tmp_path / "deployer.json"
    _key(w3, deployer, 5)
    shown = _run(capsys, "chain", "deploy", "--rpc-url", url, "--genesis", str(genesis),
                 "--keyfile", str(deployer), "--out", str(out))  # fmt: skip
    assert "genesis voting power" in shown and "quorum 4000000 JAM" in shown
    assert "voting delay 30 s" in shown
    deployment = Deployment.load(out)
    contracts = deployment.contracts(w3)
    token = contracts["JamToken"]
    for address, amount in ((holders["alice"], 2_500_000), (holders["carol"], 1_000_000)):
        assert token.functions.balanceOf(address).call() == amount * JAM
        assert token.functions.delegates(address).call() == address  # votes from genesis
    treasury = deployment.addresses["JamTimelock"]
    assert token.functions.balanceOf(treasury).call() == (100_000_000 - 5_000_000) * JAM
    # The deployer kept nothing: no JAM, no role.
    assert token.functions.balanceOf(Account.from_key(
        load_or_create_key(deployer, password="").key).address).call() == 0  # fmt: skip

    chain = ["--rpc-url", url, "--deployment", str(out)]
    alice = [*chain, "--keyfile", str(tmp_path / "alice.json")]
    bob = [*chain, "--keyfile", str(tmp_path / "bob.json")]
    _advance(w3, 2)
    created = _run(capsys, "gov", "propose", "--fee-bps", "100", *alice)
    match = re.search(r"proposal (\d+) created", created)
    assert match
    proposal = match.group(1)
    _advance(w3, 31)
    _run(capsys, "gov", "vote", proposal, "for", *alice)
    _run(capsys, "gov", "vote", proposal, "for", *bob)  # 4 M: the quorum
    _advance(w3, 301)
    assert re.search(r"state\s+Succeeded", _run(capsys, "gov", "show", proposal, *alice))
    _run(capsys, "gov", "queue", proposal, *alice)
    _advance(w3, 61)
    _run(capsys, "gov", "execute", proposal, *bob)
    assert contracts["WorkRegistry"].functions.protocolFeeBps().call() == 100
