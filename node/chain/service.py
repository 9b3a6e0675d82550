"""The node's view of the chain: the embedded devnet or an external RPC, and the deployment.

``devnet``: start anvil on loopback with its state in ``<data>/chain/``, deploy the contracts
once (the deployment file is reused while the chain still has the code), fund the local
test accounts with JAM (done by the token's genesis). ``external``: connect to ``rpc_url``
and check that ``deployment_file`` describes contracts that exist on that chain.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import RPCEndpoint, Wei

from node.chain import reads
from node.chain.deploy import Deployment, code_hash, deploy
from node.chain.devnet import Devnet
from node.chain.indexer import Indexer
from node.chain.outbox import Outbox
from node.config import NodeConfig
from node.errors import AuthError, ChainError, InputError, SessionError
from node.keys import node_key

log = logging.getLogger(__name__)


INDEX_EVERY_S = 1.0
DEVNET_BLOCK_TIME_S = 5
CACHED_READS = frozenset({"work", "rewards", "proposals", "operators", "pool"})
"""Views kept per block (``account`` is not: a devnet can set a balance without a block)."""
READ_CACHE_SIZE = 256
"""If set, the node's chain key (instead of a keyfile); never logged."""
FAUCET_ETH = 10**18
FAUCET_JAM = 1_000 * 10**18
FAUCET_PER_ADDRESS_S = 3600.0
FAUCET_PER_MINUTE = 20
FAUCET_PER_CLIENT_PER_HOUR = 10


class ChainService:
    """Start/stop the chain connection; ``info()`` for the API."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.devnet: Devnet | None = None
        self.w3: Web3 | None = None
        self.deployment: Deployment | None = None
        self.rpc_url = ""
        self._bound: dict[str, Any] | None = None
        self.indexer: Indexer | None = None
        self.outbox: Outbox | None = None
        """Transactions the node itself sends (signed with its own key)."""
        self.account: LocalAccount | None = None
        self._index_task: asyncio.Task[None] | None = None
        self._faucet_last: dict[str, float] = {}
        self._faucet_recent: list[float] = []
        self._faucet_clients: dict[str, list[float]] = {}
        self._reads: collections.OrderedDict[tuple[Any, ...], tuple[int, Any]] = (
            collections.OrderedDict()
        )
        """(view, args) → (block, result): a view read at the same block is the same."""

    async def start(self) -> None:
        """Connect (and on the devnet: start anvil and deploy if needed), then index."""
        try:  # the key itself is never logged
            self.account = await asyncio.to_thread(
                node_key, self.config.chain.keyfile, self.config.data_path
            )
        except AuthError as exc:
            raise ChainError(str(exc)) from None
        await asyncio.to_thread(self._start)
        if self.w3 is not None and self.deployment is not None:
            await asyncio.to_thread(self._open_outbox)
            confirmations = 0 if self.config.chain.mode == "devnet" else 2
            self.indexer = await asyncio.to_thread(
                Indexer,
                self.config.data_path / "chain" / "index.sqlite3",
                self.w3,
                self.deployment,
                self._contracts(),
                confirmations,
            )
            await asyncio.to_thread(self.indexer.poll)
            self._index_task = asyncio.create_task(self._index_loop(), name="chain-indexer")

    def _open_outbox(self) -> None:
        assert self.account is not None
        self.outbox = Outbox(self.config.data_path / "chain" / "outbox.sqlite3", self.account)
        devnet = self.config.chain.mode == "devnet" and self.w3 is not None
        if devnet and self.w3 and self.w3.eth.get_balance(self.account.address) < FAUCET_ETH:
            # The node pays its own gas; on the devnet it simply has some.
            self.w3.provider.make_request(
                RPCEndpoint("anvil_setBalance"), [self.account.address, hex(100 * FAUCET_ETH)]
            )
        log.info("chain: node account %s", self.account.address)

    async def _index_loop(self) -> None:
        """Keep the index current and the outbox moving; RPC trouble is retried, never fatal."""
        failures = 0
        while True:
            await asyncio.sleep(INDEX_EVERY_S if failures == 0 else min(30.0, 2.0**failures))
            try:
                assert self.indexer is not None
                await asyncio.to_thread(self.indexer.poll)
                if self.outbox is not None and self.w3 is not None:
                    await asyncio.to_thread(self.outbox.process, self.w3)
                failures = 0
            except Exception as exc:  # the chain may be down for a while
                failures += 1
                if failures in {1, 10} or failures % 100 == 0:
                    log.warning("chain indexer: %s (retrying)", exc)

    async def synced(self) -> None:
        """Index everything up to the current head now (tests and fresh API reads)."""
        if self.indexer is not None:
            await asyncio.to_thread(self.indexer.poll)

    def _start(self) -> None:
        chain = self.config.chain
        if chain.mode == "devnet":
            directory = self.config.data_path / "chain"
            # Blocks keep coming while idle (the chain's clock follows the wall clock, so
            # "voting opens in 60 s" happens), and every transaction is still mined at once.
            self.devnet = Devnet(
                directory / "anvil-state.json",
                port=chain.devnet_port,
                block_time_s=DEVNET_BLOCK_TIME_S,
            )
            self.devnet.start()
            self.rpc_url = self.devnet.url
            self.w3 = Web3(Web3.HTTPProvider(self.rpc_url))
            path = directory / "deployment.json"
            if path.exists():
                try:
                    existing: Deployment | None = Deployment.load(path)
                except ChainError as exc:  # an older release's file: its contracts are replaced
                    log.warning("devnet: %s; redeploying", exc)
                    existing = None
                if existing is not None and existing.code != code_hash():
                    # Contracts changed since (a new release): new code calling the old
                    # contracts would revert. A devnet's state is disposable: deploy again.
                    log.warning(
                        "devnet: the contracts changed since %s was deployed; redeploying"
                        " (works, stakes and balances on the old contracts stay behind)",
                        path,
                    )
                elif existing is not None and existing.is_live(self.w3):
                    self.deployment = existing
                    log.info("devnet: reusing the deployment in %s", path)
                    return
                else:
                    log.warning(
                        "devnet: %s does not match the chain (state lost?); redeploying", path
                    )
            accounts = list(self.w3.eth.accounts)
            assert self.account is not None
            self.deployment = deploy(
                self.w3, accounts[0], accounts[1:], settler=self.account.address
            )
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
            if deployment.code and deployment.code != code_hash():
                log.warning(
                    "chain: %s was deployed from other contract code than this release's;"
                    " calls this release makes may revert (deploy again with jamnet deploy)",
                    chain.deployment_file,
                )
            self.deployment = deployment

    async def stop(self) -> None:
        """Stop indexing and the devnet (it saves its state); idempotent."""
        if self._index_task is not None:
            self._index_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._index_task
            self._index_task = None
        if self.indexer is not None:
            self.indexer.close()
            self.indexer = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None
        if self.devnet is not None:
            await asyncio.to_thread(self.devnet.stop)
            self.devnet = None

    async def register_devnet_node(self, peer_id: str, endpoint: str) -> None:
        """Devnet only: stake the minimum and register this node in NodeRegistry (through the
        outbox, like every transaction the node sends), so that it may attest its takes."""
        if self.config.chain.mode != "devnet" or self.w3 is None or self.deployment is None:
            return
        await asyncio.to_thread(self._register_devnet_node, peer_id, endpoint)

    def _register_devnet_node(self, peer_id: str, endpoint: str) -> None:
        assert self.w3 is not None
        assert self.deployment is not None
        assert self.outbox is not None
        assert self.account is not None
        w3, c, me = self.w3, self._contracts(), self.account.address
        nodes, token = c["NodeRegistry"], c["JamToken"]
        have, _, _, registered, peer, current, _ = nodes.functions.operator(me).call()
        if registered and (peer, current) == (peer_id, endpoint):
            return
        stake = int(nodes.functions.parameters().call()[0])
        have = int(have)
        if have < stake:
            need = stake - have - int(token.functions.balanceOf(me).call())
            if need > 0:  # from an unlocked devnet account holding the devnet allocation
                w3.eth.wait_for_transaction_receipt(
                    token.functions.transfer(me, need).transact({"from": w3.eth.accounts[-1]})
                )
            key = f"devnet-node:{me}"
            self.outbox.enqueue(
                f"{key}:approve",
                token.address,
                token.functions.approve(nodes.address, stake - have)._encode_transaction_data(),
            )
            self.outbox.enqueue(
                f"{key}:stake",
                nodes.address,
                nodes.functions.stake(stake - have)._encode_transaction_data(),
            )
        call = nodes.functions.register(peer_id, endpoint, '{"devnet":true}')
        self.outbox.enqueue(  # a new endpoint (another port) registers again: updates it
            f"devnet-node:{me}:register:{peer_id}:{endpoint}"[:200],
            nodes.address,
            call._encode_transaction_data(),
        )
        deadline = time.monotonic() + 30.0  # three transactions, each mined as it is sent
        while self.outbox.process(w3) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not nodes.functions.isRegistered(me).call():
            raise ChainError("the devnet node's stake and registration did not go through")
        log.info("devnet: node %s registered in NodeRegistry as %s", me, peer_id)

    async def faucet(self, address: str, client: str = "?") -> dict[str, str]:
        """Devnet only: 1 ETH and 1000 JAM to a new key, at most once an hour per address and
        a few times an hour per client address; never to a contract."""
        if self.config.chain.mode != "devnet" or self.w3 is None or self.deployment is None:
            raise SessionError("the faucet exists only on the embedded devnet")
        if not Web3.is_address(address):
            raise InputError("address must be an Ethereum address")
        address = Web3.to_checksum_address(address)
        if int(address, 16) < 2**16:  # the zero address and precompiles: nobody's key
            raise InputError("the faucet funds keys: that address belongs to nobody")
        now = time.monotonic()
        self._faucet_recent = [t for t in self._faucet_recent if now - t < 60]
        last = self._faucet_last.get(address)
        if last is not None and now - last < FAUCET_PER_ADDRESS_S:
            raise SessionError(
                "this address already got its faucet allowance; try again in an hour"
            )
        drips = [t for t in self._faucet_clients.get(client, []) if now - t < 3600]
        if len(drips) >= FAUCET_PER_CLIENT_PER_HOUR:
            raise SessionError(
                f"{FAUCET_PER_CLIENT_PER_HOUR} keys were funded from your address this hour;"
                " try again later"
            )
        w3 = self.w3
        if len(await asyncio.to_thread(w3.eth.get_code, address)) > 0:
            raise InputError("the faucet funds keys, not contracts: give it your key's address")
        self._faucet_clients[client] = [*drips, now]
        if len(self._faucet_clients) > 10_000:
            self._faucet_clients.pop(next(iter(self._faucet_clients)))
        if len(self._faucet_recent) >= FAUCET_PER_MINUTE:
            raise SessionError("the faucet is busy; try again in a minute")
        self._faucet_last[address] = now
        if len(self._faucet_last) > 10_000:  # forget allowances older than the hour
            self._faucet_last = {
                a: t for a, t in self._faucet_last.items() if now - t < FAUCET_PER_ADDRESS_S
            }
        self._faucet_recent.append(now)
        await asyncio.to_thread(self._drip, address)
        return {"address": address, "eth": "1", "jam": "1000"}

    def _drip(self, address: str) -> None:
        if self.w3 is None or self.deployment is None:
            raise ChainError("the chain is not connected")
        w3 = self.w3
        source = w3.eth.accounts[-1]  # an unlocked devnet account holding ETH and JAM
        token = self.deployment.contracts(w3)["JamToken"]
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": source, "to": address, "value": Wei(FAUCET_ETH)})
        )
        w3.eth.wait_for_transaction_receipt(
            token.functions.transfer(address, FAUCET_JAM).transact({"from": source})
        )

    async def read(self, view: str, *args: Any) -> Any:
        """Run a read from node.chain.reads in a worker thread."""
        if self.w3 is None or self.deployment is None:
            raise SessionError("this node is not connected to a chain")
        w3, indexer = self.w3, self.indexer
        if indexer is None:
            raise SessionError("the chain index is not ready yet")

        def events(contract: str, name: str) -> list[dict[str, Any]]:
            return indexer.events(contract, name, 1000)

        views: dict[str, Any] = {
            "account": lambda c: reads.account(w3, c, *args),
            "work": lambda c: reads.work(
                c,
                int(args[0]),
                events("WorkRegistry", "RoyaltyForwarded"),
                events("Licensing", "TermsOffered"),
                events("Licensing", "AuctionCreated"),
            ),
            "rewards": lambda c: reads.rewards(c, events("NodeRewards", "Reported")),
            "proposals": lambda c: reads.proposals(c, events("JamGovernor", "ProposalCreated")),
            "events": lambda c: indexer.events(*args),
            "operators": reads.operators,
            "pool": reads.pool,
        }
        if view not in views:
            raise ValueError(view)

        def run() -> Any:
            # Nothing a view shows changes without a block: a page polling every work every
            # few seconds costs one block-number call per work until the next block.
            key = (view, *args)
            block = int(w3.eth.block_number)
            cached = self._reads.get(key) if view in CACHED_READS else None
            if cached is not None and cached[0] == block:
                self._reads.move_to_end(key)
                return cached[1]
            c = self._contracts()
            if view in {"proposals", "events", "work", "rewards"}:
                with contextlib.suppress(Exception):  # stale beats failing when the RPC hiccups
                    indexer.poll()
            result = views[view](c)
            if view in CACHED_READS:
                self._reads[key] = (block, result)
                while len(self._reads) > READ_CACHE_SIZE:
                    self._reads.popitem(last=False)
            return result

        return await asyncio.to_thread(run)

    def _contracts(self) -> dict[str, Any]:
        if self._bound is None:
            assert self.w3 is not None and self.deployment is not None  # noqa: PT018
            self._bound = self.deployment.contracts(self.w3)
        return self._bound

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
            "node_address": self.account.address if self.account is not None else None,
            "params": {k: str(v) for k, v in self.deployment.params.items()},
        }
