"""The chain from the terminal: `jamnet token|works|operator|gov` against a `jamnet node`
process running its embedded anvil devnet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from node.cli import main
from tests.e2e.test_cli_jam import read_line_matching

pytestmark = pytest.mark.slow


@pytest.fixture
def chain_node(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "JAMNET_DATA_DIR": str(tmp_path / "data"),
        "JAMNET_CHAIN__DEVNET_PORT": "0",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "node",
            "--port",
            "0",
            "--chain",
            "devnet",
            "--no-ai",
            "--no-p2p",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        yield read_line_matching(proc, r"open (http\S+)", timeout_s=90).rstrip("/")
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def devnet_rpc(node: str, method: str, params: list[object]) -> None:
    info = json.loads(urllib.request.urlopen(node + "/api/chain").read())
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        info["rpc_url"], data=body, headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request).read()


def run(capsys, *args: str) -> str:  # type: ignore[no-untyped-def]
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_tokens_works_operators_and_governance_from_the_cli(
    chain_node: str, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    alice = ["--node", chain_node, "--keyfile", str(tmp_path / "alice.json")]
    bob = ["--node", chain_node, "--keyfile", str(tmp_path / "bob.json")]
    assert "faucet sent 1 ETH and 1000 JAM" in run(capsys, "token", "faucet", *alice)
    run(capsys, "token", "faucet", *bob)
    # A second helping is refused with a reason, and the command exits with 2.
    assert main(["token", "faucet", *alice]) == 2
    assert "already got" in capsys.readouterr().err
    balance = run(capsys, "token", "balance", *alice)
    assert re.search(r"JAM\s+1000\b", balance)
    assert re.search(r"JAM\s+1000\b", run(capsys, "token", "balance", *bob))

    # Works are registered from a node's takes (tests/e2e/test_royalty_loop.py); a hand-made
    # registration needs a registered node's provenance: the commands are gone.
    with pytest.raises(SystemExit) as gone:
        main(["works", "register", *alice])
    assert gone.value.code == 2
    capsys.readouterr()

    # Operators: 500 JAM is below the 10 000 minimum — the contract refuses the stake.
    assert main(["operator", "stake", "500", *bob]) == 2
    assert "NodeRegistryStakeTooLow" in capsys.readouterr().err
    assert main(["operator", "register", "12D3KooWBob", "https://bob.example", *bob]) == 2
    assert "NodeRegistryStakeTooLow" in capsys.readouterr().err
    assert re.search(r"staked\s+0 JAM", run(capsys, "operator", "status", *bob))
    bob_address = re.search(r"address\s+(0x\w+)", run(capsys, "token", "balance", *bob))
    alice_address = re.search(r"address\s+(0x\w+)", run(capsys, "token", "balance", *alice))
    assert bob_address and alice_address
    run(capsys, "token", "transfer", alice_address.group(1), "500", *bob)

    # Governance needs 1000 votes to propose: Bob (500 JAM left) cannot, Alice (1500) can.
    run(capsys, "gov", "delegate", *bob)
    run(capsys, "gov", "delegate", *alice)
    devnet_rpc(chain_node, "evm_increaseTime", [2])  # votes count from the next second
    devnet_rpc(chain_node, "evm_mine", [])
    assert main(["gov", "propose", "--fee-bps", "100", *bob]) == 2
    assert "GovernorInsufficientProposerVotes" in capsys.readouterr().err
    assert "no proposals yet" in run(capsys, "gov", "list", *alice)
    created = run(capsys, "gov", "propose", "--fee-bps", "100", *alice)
    proposal = re.search(r"proposal (\d+) created", created).group(1)  # type: ignore[union-attr]
    assert "Pending" in run(capsys, "gov", "list", *alice)
    devnet_rpc(chain_node, "evm_increaseTime", [61])
    devnet_rpc(chain_node, "evm_mine", [])
    run(capsys, "gov", "vote", proposal[:10], "for", "--reason", "cheaper for everyone", *alice)
    shown = run(capsys, "gov", "show", proposal, *bob)
    assert re.search(r"state\s+Active", shown) and re.search(r"votes for\s+1,?500\b", shown)
    devnet_rpc(chain_node, "evm_mine", [])
