"""The OpenAPI description against the real router, and schemathesis fuzzing a live node
(devnet, AI and p2p on: every route mounted) with a participant's token, so the routes
behind it are reached too. Fails on any 5xx, undocumented status, content type or reply
that does not match the description."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from eth_account import Account

from client.session import JamClient
from node.api.openapi import OPERATIONS
from node.api.server import mounted_routes
from node.app import Node
from tests.conftest import node_config

pytestmark = pytest.mark.timeout(900)
EXAMPLES = int(os.environ.get("JAMNET_FUZZ_EXAMPLES", "25"))
"""Test cases per operation and phase (bounded: make test runs this every time)."""
SEED = os.environ.get("JAMNET_FUZZ_SEED", "20261201")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@pytest.fixture
async def full_node(tmp_path: Path) -> AsyncIterator[Node]:
    config = node_config(
        tmp_path / "data",
        chain={"mode": "devnet", "devnet_port": 0},
        ai={"enabled": True},
        p2p={"enabled": True, "listen": "/ip4/127.0.0.1/tcp/0"},
    )
    async with Node(config) as node:
        assert node.ai is not None
        await node.ai.ready()
        yield node


async def test_the_description_matches_the_routes_and_survives_fuzzing(
    full_node: Node, tmp_path: Path
) -> None:
    node = full_node
    assert node._runner is not None
    mounted = mounted_routes(node._runner.app)
    described = {(op.method, op.path) for op in OPERATIONS}
    assert mounted - described == set(), "routes the description lacks"
    assert described - mounted == set(), "described routes this node does not serve"
    async with aiohttp.ClientSession() as http, http.get(node.url + "api/openapi.json") as reply:
        assert reply.status == 200
        doc = await reply.json()
    assert doc["openapi"] == "3.1.0"
    served = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert served == mounted

    async with JamClient(node.url, Account.create(), "fuzz owner") as owner:
        session = await owner.create_session("fuzzed")
        sid = session["id"]
        await owner.join(sid)
        path = f"/api/sessions/{sid}/recording"
        take = (await owner.request("POST", path, {"action": "start"}, auth=True))["recording"]
        await owner.request("POST", path, {"action": "stop"}, auth=True)
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            f'headers = {{ Authorization = "Bearer {owner.token}" }}\n'
            "[parameters]\n"
            f'session_id = "{sid}"\n'
            f'participant_id = "{owner.participant["id"]}"\n'
            f'recording_id = "{take}"\n'
        )
        # First with the owner's token kept valid (leaving or closing would void it), then
        # everything, those included.
        keep_token = ("leave", "participants/{participant_id}")
        await _fuzz(
            node,
            config,
            tmp_path,
            "owner",
            [
                "--exclude-path-regex",
                "|".join(f"/{part}$" for part in keep_token)
                .replace("{", "\\{")
                .replace("}", "\\}"),
                "--exclude-method",
                "DELETE",
            ],
        )
        await _fuzz(node, config, tmp_path, "all", [])


async def _fuzz(node: Node, config: Path, where: Path, name: str, extra: list[str]) -> None:
    st = Path(sys.executable).with_name("st")
    process = await asyncio.create_subprocess_exec(
        str(st),
        "--config-file",
        str(config),
        "run",
        node.url + "api/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--request-timeout",
        "120",
        "--no-color",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=where,
    )
    out, _ = await process.communicate()
    report = out.decode(errors="replace")
    (where / f"schemathesis-{name}.txt").write_text(report)
    assert process.returncode == 0, report[-12000:]
    assert "Tested: " in report and " passed" in report, report[-3000:]
