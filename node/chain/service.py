"""The node's view of the chain: the embedded devnet or an external RPC, and the deployment.

``devnet``: start anvil on loopback with its state in ``<data>/chain/``, deploy the contracts
once (the deployment file is reused while the chain still has the code), fund the local
test accounts with JAM (done by the token's genesis). ``external``: connect to ``rpc_url``
and check that ``deployment_file`` describes contracts that exist on that chain.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from web3 import Web3

from node.chain.deploy import Deployment, deploy
from node.chain.devnet import Devnet
from node.config import NodeConfig
from node.errors import ChainError

log = logging.getLogger(__name__)


class ChainService:
    """Start/stop the chain connection; ``info()`` for the API."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.devnet: Devnet | None = None
        self.w3: Web3 | None = None
        self.deployment: Deployment | None = None
        self.rpc_url = ""

    async def start(self) -> None:
        """Connect (and on the devnet: start anvil and deploy if needed)."""
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        chain = self.config.chain
        if chain.mode == "devnet":
            directory = self.config.data_path / "chain"
            self.devnet = Devnet(directory / "anvil-state.json", port=chain.devnet_port)
            self.devnet.start()
            self.rpc_url = self.devnet.url
            self.w3 = Web3(Web3.HTTPProvider(self.rpc_url))
            path = directory / "deployment.json"
            if path.exists():
                existing = Deployment.load(path)
                if existing.is_live(self.w3):
                    self.deployment = existing
                    log.info("devnet: reusing the deployment in %s", path)
                    return
                log.warning("devnet: %s does not match the chain (state lost?); redeploying", path)
            accounts = list(self.w3.eth.accounts)
            self.deployment = deploy(self.w3, accounts[0], accounts[1:])
            self.deployment.save(path)
            log.info("devnet: contracts deployed, see %s", path)
        elif chain.mode == "external":
            self.rpc_url = chain.rpc_url
            self.w3 = Web3(Web3.HTTPProvider(chain.rpc_url, request_kwargs={"timeout": 10}))
            deployment = Deployment.load(Path(chain.deployment_file))
            try:
                live = deployment.is_live(self.w3)
            except Exception as exc:
                raise ChainError(f"cannot reach the chain at {chain.rpc_url}: {exc}") from None
            if not live:
                raise ChainError(
                    f"{chain.deployment_file} does not describe contracts on {chain.rpc_url}"
                    f" (chain id {deployment.chain_id}); check both"
                )
            self.deployment = deployment

    async def stop(self) -> None:
        """Stop the devnet (it saves its state); idempotent."""
        if self.devnet is not None:
            await asyncio.to_thread(self.devnet.stop)
            self.devnet = None

    def info(self) -> dict[str, Any]:
        """What the API shows about the chain."""
        if self.deployment is None:
            return {"mode": self.config.chain.mode, "ready": False}
        return {
            "mode": self.config.chain.mode,
            "ready": True,
            "rpc_url": self.rpc_url if self.config.chain.mode == "devnet" else None,
            "chain_id": self.deployment.chain_id,
            "block": self.deployment.block,
            "addresses": self.deployment.addresses,
        }
