"""Per-client limits behind a reverse proxy: X-Forwarded-For is believed from trusted proxies
only, and only for the hops they appended (a real node, real HTTP)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from eth_account import Account

from node.app import Node
from node.errors import ConfigError
from tests.conftest import node_config


async def _challenge(http: aiohttp.ClientSession, node: Node, forwarded: str | None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    body = {"address": Account.create().address}
    async with http.post(f"{node.url}api/challenges", json=body, headers=headers) as reply:
        return reply.status


async def test_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    config = node_config(
        tmp_path / "data",
        http={"port": 0, "trusted_proxies": ["127.0.0.1"]},
        session={"challenges_per_minute": 2},
    )
    async with Node(config) as node, aiohttp.ClientSession() as http:
        assert [await _challenge(http, node, "203.0.113.5") for _ in range(3)] == [200, 200, 429]
        assert await _challenge(http, node, "203.0.113.6") == 200  # another client behind it
        # A client's own header cannot move it to another bucket: the proxy appends the real
        # address last, and that is the one counted.
        assert await _challenge(http, node, "198.51.100.1, 203.0.113.5") == 429
        # Garbage in the header counts against the proxy itself, not against nobody.
        assert await _challenge(http, node, "nonsense") == 200
        assert await _challenge(http, node, "nonsense") == 200
        assert await _challenge(http, node, None) == 429  # the proxy's own bucket is full now


async def test_without_trusted_proxies_the_header_is_ignored(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", session={"challenges_per_minute": 2})
    async with Node(config) as node, aiohttp.ClientSession() as http:
        statuses = [await _challenge(http, node, f"203.0.113.{i}") for i in range(3)]
        assert statuses == [200, 200, 429]


def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        node_config(tmp_path, http={"trusted_proxies": ["proxy.example"]}).validate()
