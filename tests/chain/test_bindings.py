"""Typed bindings: up to date with the ABIs, and they work against anvil."""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from node.chain import bindgen, bindings
from node.chain.deploy import JAM
from tests.chain.conftest import Chain, attest, registration


def test_bindings_match_the_current_abis(tmp_path: Path) -> None:
    fresh = tmp_path / "bindings.py"
    bindgen.write(fresh)
    assert fresh.read_text() == bindgen.TARGET.read_text(), "run `python -m node.chain.bindgen`"


def test_typed_calls_and_transactions(chain: Chain) -> None:
    works = bindings.WorkRegistry(chain.c["WorkRegistry"])
    token = bindings.JamToken(chain.c["JamToken"])
    assert works.protocol_fee_bps() == 250 and works.max_fee_bps() == 1000
    assert token.clock_mode() == "mode=timestamp" and token.decimals() == 18
    alice = chain.accounts[1]
    reg = registration(Web3.keccak(text="typed"), [alice], [10000], uri="u")
    proof = attest(chain, reg.content_hash, [alice])
    chain.send(works.register(reg.as_tuple(), [b""], proof), alice)
    chain.send(works.pay(0), chain.accounts[2], value=10**18)
    assert works.owed_eth(0, alice) == 975 * 10**15
    assert token.balance_of(alice) == 1_000_000 * JAM
    content, uri, registrant, who, shares, total_eth, total_jam = works.work(0)
    assert content == Web3.keccak(text="typed") and total_eth == 975 * 10**15
    assert (uri, registrant, who, shares, total_jam) == ("u", alice, [alice], [10000], 0)
