"""HTTPS: a self-signed certificate is made once in the data dir and served."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from node.app import Node
from node.errors import ConfigError
from tests.conftest import node_config


async def test_self_signed_tls(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with Node(node_config(data, http={"port": 0, "tls": "self-signed"})) as node:
        assert node.url.startswith("https://localhost:")
        cert = data / "tls-cert.pem"
        assert cert.exists() and (data / "tls-key.pem").stat().st_mode & 0o077 == 0
        context = ssl.create_default_context(cafile=str(cert))
        async with (
            aiohttp.ClientSession() as http,
            http.get(node.url + "api/health", ssl=context) as response,
        ):
            assert response.status == 200
    first = cert.read_bytes()
    async with Node(node_config(data, http={"port": 0, "tls": "self-signed"})):
        assert cert.read_bytes() == first, "the certificate is reused, not remade"


async def test_missing_certificate_files_are_a_clear_error(tmp_path: Path) -> None:
    config = node_config(
        tmp_path,
        http={
            "port": 0,
            "tls": "files",
            "cert_file": str(tmp_path / "no.pem"),
            "key_file": str(tmp_path / "no.key"),
        },
    )
    with pytest.raises(ConfigError, match="cannot load TLS certificate"):
        async with Node(config):
            pass
