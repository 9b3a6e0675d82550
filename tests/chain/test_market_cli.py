"""`jamnet works tree` and `jamnet licences …` against anvil, as a rights holder, a filmmaker
and two bidders would run them (each with their own keyfile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from node.cli import main
from node.keys import load_or_create_key
from tests.chain.conftest import Chain, register_work, registration

pytestmark = pytest.mark.timeout(600)


def test_licences_and_family_trees_from_the_cli(
    chain: Chain,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JAMNET_KEY_PASSWORD", "")
    w3 = chain.w3
    deployment = tmp_path / "deployment.json"
    chain.deployment.save(deployment)
    url = w3.provider.endpoint_uri  # type: ignore[attr-defined]

    def key(name: str) -> tuple[str, str]:
        path = tmp_path / name / "key.json"
        account = load_or_create_key(path, password="")
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction(
                {"from": chain.accounts[9], "to": account.address, "value": 10**19}
            )
        )
        return str(path), str(account.address)

    def run(keyfile: str, *args: str, code: int = 0) -> str:
        got = main([*args, "--keyfile", keyfile, "--rpc-url", url, "--deployment", str(deployment)])
        out, err = capsys.readouterr()
        assert got == code, out + err
        return out + err

    seller_key, seller = key("seller")
    w3.provider.make_request("anvil_impersonateAccount", [seller])  # type: ignore[arg-type]
    writer = Account.create()
    song = register_work(
        chain,
        chain.accounts[1],
        registration(
            Web3.keccak(text="cli song"), [chain.accounts[1]], [10000], derivative_bps=1500
        ),
        {},
    )
    remix = register_work(
        chain,
        seller,
        registration(
            Web3.keccak(text="cli remix"),
            [seller, writer.address],
            [5000, 5000],
            nonce=2,
            parents=(song,),
        ),
        {writer.address: writer},
    )
    out = run(
        seller_key,
        "licences",
        "offer",
        str(remix),
        "--usage",
        "film",
        "--days",
        "30",
        "--price",
        "0.5",
    )
    assert out.startswith("terms 0: film licence")
    refused = run(
        seller_key, "licences", "offer", str(remix), "--usage", "karaoke", "--price", "1", code=2
    )
    assert "usage must be one of online-video, advert, film" in refused
    buyer_key, buyer = key("filmmaker")
    refused = run(
        buyer_key, "licences", "offer", str(remix), "--usage", "film", "--price", "1", code=2
    )
    assert "LicensingUnauthorized" in refused
    out = run(buyer_key, "licences", "buy", "0")
    assert out.startswith("licence 0: film use") and buyer in out
    view = json.loads(run(buyer_key, "licences", "verify", "0", "--json"))
    assert view["valid"] and view["licensee"] == buyer and view["work"] == remix
    auction = ["auction", str(remix), "--usage", "advert", "--reserve", "0.1"]
    out = run(seller_key, "licences", *auction, "--commit-hours", "1", "--reveal-hours", "1")
    assert "auction 0: exclusive advert licence" in out and "bidding" in out
    (high_key, high), (low_key, _) = key("high"), key("low")
    out = run(high_key, "licences", "bid", "0", "0.3", "--deposit", "0.5")
    assert "kept in" in out and (Path(high_key).parent / "bids.json").is_file()
    run(low_key, "licences", "bid", "0", "0.2")
    chain.advance(3600)
    assert "revealed 0.3 ETH" in run(high_key, "licences", "reveal", "0")
    run(low_key, "licences", "reveal", "0")
    chain.advance(3600)
    out = run(buyer_key, "licences", "settle", "0")
    assert f"{high} won licence 1 at the second price, 0.2 ETH" in out
    assert "withdrew 0.3 ETH" in run(high_key, "licences", "refund")
    assert "withdrew 0.2 ETH" in run(low_key, "licences", "refund")
    assert "nothing to refund" in run(low_key, "licences", "refund")
    assert "winner" in run(buyer_key, "licences", "status", "0")
    out = run(buyer_key, "licences", "list", str(remix))
    assert "film" in out and "auction 0" in out and "settled" in out
    tree = run(buyer_key, "works", "tree", str(remix))
    assert f"parents: {song}" in tree and "15 %" in tree
    tree = run(buyer_key, "works", "tree", str(song))
    assert f"derivatives of it: {remix}" in tree and "received from descendants" in tree
