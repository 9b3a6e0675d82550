"""The node with its embedded devnet: deploys once per data dir, reuses it after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from eth_account import Account

from node.app import Node
from node.errors import ChainError, ConfigError, InputError, SessionError
from tests.conftest import node_config


async def get(node: Node, path: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as http, http.get(node.url.rstrip("/") + path) as reply:
        assert reply.status == 200
        body: dict[str, object] = await reply.json()
        return body


async def test_devnet_deploys_once_and_is_reused_after_a_restart(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node:
        first = await get(node, "/api/chain")
        health = await get(node, "/api/health")
    assert first["ready"] and first["chain_id"] == 31337 and health["chain"] == "devnet"
    addresses = first["addresses"]
    assert isinstance(addresses, dict) and set(addresses) >= {
        "JamToken",
        "JamGovernor",
        "WorkRegistry",
    }
    saved = json.loads((tmp_path / "data" / "chain" / "deployment.json").read_text())
    assert saved["addresses"] == addresses
    async with Node(config) as node:
        again = await get(node, "/api/chain")
        # The devnet node is a registered node (it attests its takes), at its current URL.
        operators = (await get(node, "/api/chain/operators"))["operators"]
        mine = [o for o in operators if o["address"] == again["node_address"]]
        assert [o["endpoint"] for o in mine] == [node.url]
    assert again["addresses"] == addresses, "the restarted devnet kept its contracts"
    # The node has its own key (made on first use, kept in the data dir) for its transactions.
    assert again["node_address"] == first["node_address"] and str(first["node_address"]).startswith(
        "0x"
    )
    assert (tmp_path / "data" / "chain" / "node-key.json").stat().st_mode & 0o777 == 0o600
    # A deployment made from other contract code (an older release's, same names) is not
    # reused: the devnet deploys this release's contracts again.
    path = tmp_path / "data" / "chain" / "deployment.json"
    assert saved["code"].startswith("0x") and len(saved["code"]) == 66
    path.write_text(json.dumps({**saved, "code": "0x" + "ab" * 32}))
    async with Node(config) as node:
        renewed = await get(node, "/api/chain")
    assert renewed["addresses"] != addresses
    assert json.loads(path.read_text())["code"] == saved["code"]


async def test_external_chain_needs_a_valid_deployment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rpc_url"):
        node_config(tmp_path / "a", chain={"mode": "external"}).validate()
    bad = node_config(
        tmp_path / "b",
        chain={
            "mode": "external",
            "rpc_url": "http://127.0.0.1:9",
            "deployment_file": str(tmp_path / "none.json"),
        },
    )
    with pytest.raises(ChainError, match="deployment file"):
        async with Node(bad):
            pass


async def test_the_node_key_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eth_account import Account

    key = Account.create()
    monkeypatch.setenv("JAMNET_NODE_PRIVATE_KEY", key.key.hex())
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node:
        info = await get(node, "/api/chain")
    assert info["node_address"] == key.address
    assert not (tmp_path / "data" / "chain" / "node-key.json").exists()
    monkeypatch.setenv("JAMNET_NODE_PRIVATE_KEY", "0x1234")
    with pytest.raises(ChainError, match="JAMNET_NODE_PRIVATE_KEY is not a private key"):
        async with Node(config):
            pass


async def test_the_faucet_funds_keys_not_contracts_and_a_few_per_client(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node:
        assert node.chain is not None and node.chain.deployment is not None
        contract = node.chain.deployment.addresses["WorkRegistry"]
        with pytest.raises(InputError, match="not contracts"):
            await node.chain.faucet(contract, "10.0.0.1")
        for _ in range(10):
            await node.chain.faucet(Account.create().address, "10.0.0.1")
        with pytest.raises(SessionError, match="from your address"):
            await node.chain.faucet(Account.create().address, "10.0.0.1")
        await node.chain.faucet(Account.create().address, "10.0.0.2")  # someone else


async def test_chain_views_are_read_once_per_block(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node:
        chain = node.chain
        assert chain is not None and chain.w3 is not None
        w3 = chain.w3
        for _ in range(20):  # the devnet mines a block every few seconds: retry across one
            block = w3.eth.block_number
            first, again = await chain.read("operators"), await chain.read("operators")
            if w3.eth.block_number == block:
                assert again is first  # same block: the same read, not a second round of calls
                break
        else:
            raise AssertionError("no two reads within one block")
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        fresh = await chain.read("operators")
        assert fresh is not first and fresh == first  # a new block: read again
        assert await chain.read("account", first["operators"][0]["address"]) is not (
            await chain.read("account", first["operators"][0]["address"])
        ), "balances are read every time (a devnet sets them without a block)"
