"""The node's p2p service (asyncio side): identity, the trio host, the network view."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import trio
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import Secp256k1PrivateKey, create_new_key_pair

import node
from node.config import NodeConfig
from node.errors import ConfigError
from node.jam import JamService
from node.p2p.advert import MAX_ADDRS, MAX_SESSIONS, Advert, NetworkView
from node.p2p.bridge import BridgeError, TrioBridge
from node.p2p.federation import FederationService
from node.p2p.host import P2PHost

log = logging.getLogger(__name__)
STAKE_EVERY_S = 30.0
Answerer = Callable[[str, dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


def load_identity(path: Path) -> KeyPair:
    """The node's libp2p key from ``path`` (hex secp256k1), made on first use (mode 0600)."""
    if path.is_file():
        try:
            secret = bytes.fromhex(path.read_text().strip())
            key = Secp256k1PrivateKey.from_bytes(secret)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{path}: not a p2p identity key ({exc}); move it away") from None
        return KeyPair(key, key.get_public_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    pair = create_new_key_pair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pair.private_key.to_bytes().hex())
    return pair


def check_port_free(listen: str) -> None:
    """Refuse a p2p port another process holds: py-libp2p listens with SO_REUSEPORT, so a
    second node on the same port would silently share (and split) its connections."""
    parts = listen.strip("/").split("/")
    if len(parts) < 4 or parts[0] not in ("ip4", "ip6") or parts[2] != "tcp":
        raise ConfigError(f"p2p.listen {listen!r} must look like /ip4/127.0.0.1/tcp/4001")
    host, port = parts[1], int(parts[3])
    if port == 0:
        return
    family = socket.AF_INET if parts[0] == "ip4" else socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a restart may leave TIME_WAIT sockets; a live listener still refuses.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for p2p on {host}:{port} ({exc.strerror}): another node "
                "probably runs there; set p2p.listen (JAMNET_P2P__LISTEN) to another port"
            ) from None


class P2PService:
    """Runs the libp2p host in trio guest mode and answers the API's questions about it."""

    def __init__(self, config: NodeConfig, jam: JamService, chain: Any = None) -> None:
        self.config = config
        self.jam = jam
        self.chain = chain
        self.stake: str | None = None
        """What the adverts say about this node's registration (None without a chain)."""
        self._stake_task: asyncio.Task[None] | None = None
        self.bridge: TrioBridge | None = None
        self._scope: trio.CancelScope | None = None
        self._finished: trio.Event | None = None
        self.key_pair = load_identity(config.data_path / "p2p" / "identity.key")
        self.host: P2PHost | None = None
        self.http_url = ""
        self.view: NetworkView | None = None
        self.federation: FederationService | None = None
        self.on_served: Answerer | None = None
        """Answers a peer's request to countersign served minutes (node.operator)."""

    @property
    def peer_id(self) -> str:
        """This node's peer id."""
        from libp2p.peer.id import ID

        return ID.from_pubkey(self.key_pair.public_key).to_base58()

    async def start(self, http_url: str) -> None:
        """Start trio and the host; returns once it listens."""
        cfg = self.config.p2p
        check_port_free(cfg.listen)
        self.http_url = http_url
        self.view = view = NetworkView(self.peer_id, ttl_s=cfg.peer_ttl_s)

        async def on_bridge(peer_id: str, request: dict[str, Any]) -> dict[str, Any]:
            assert self.bridge is not None
            assert self.federation is not None
            if isinstance(request, dict) and request.get("type") == "served":
                if self.on_served is None:
                    return {"ok": False, "error": "this node does not take part in rewards"}
                return await self.bridge.run_asyncio(self.on_served(peer_id, request))
            return await self.bridge.run_asyncio(self.federation.accept(peer_id, request))

        self.host = P2PHost(
            self.key_pair,
            cfg.listen,
            list(cfg.bootstrap),
            self.view,
            self._advert,
            cfg.advert_interval_s,
            on_bridge,
            mdns=self._use_mdns(),
            dht=cfg.dht,
        )
        self.bridge = bridge = await TrioBridge.acquire()

        async def request(peer_id: str, addrs: list[str], message: dict[str, Any]) -> Any:
            assert self.host is not None
            return await bridge.call(self.host.request, peer_id, addrs, message)

        def addresses(peer_id: str) -> list[str]:
            peer = view.peers.get(peer_id)
            return list(peer.advert.addrs) if peer is not None else []

        self.federation = FederationService(
            self.jam, self.config.media.ice_servers, request, view.directory, addresses,
            self.peer_id,
        )  # fmt: skip
        host = self.host
        self._scope = scope = trio.CancelScope()
        self._finished = finished = trio.Event()

        async def supervised(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with scope:
                    await host.run(task_status=task_status)
            finally:
                finished.set()

        async def run_host() -> list[str]:
            nursery = bridge._require()
            addrs: list[str] = await nursery.start(supervised)
            return addrs

        addrs = await bridge.call(run_host)
        self.federation.start()
        if self.chain is not None:
            self._stake_task = asyncio.create_task(self._watch_stake(), name="p2p-stake")
        log.info("p2p host %s listening on %s", self.peer_id, ", ".join(addrs))

    async def ask(self, peer_id: str, message: dict[str, Any]) -> Any:
        """One request to a peer node over the bridge protocol (dialled if needed)."""
        if self.bridge is None or self.host is None or self.view is None:
            raise BridgeError("p2p is not running")
        peer = self.view.peers.get(peer_id)
        addrs = list(peer.advert.addrs) if peer is not None else []
        return await self.bridge.call(self.host.request, peer_id, addrs, message)

    def _use_mdns(self) -> bool:
        cfg = self.config.p2p
        address = cfg.listen.strip("/").split("/")[1]
        if not cfg.mdns:
            return False
        ip = ipaddress.ip_address(address)
        if ip.is_loopback or ip.is_unspecified:
            log.info("mDNS off: p2p.listen %s is not one LAN address (set it to use mDNS)", ip)
            return False
        return True

    async def stop(self) -> None:
        """Stop the host, and trio when no other node uses it (idempotent)."""
        if self._stake_task is not None:
            self._stake_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stake_task
            self._stake_task = None
        if self.federation is not None:
            await self.federation.stop()
        bridge, self.bridge = self.bridge, None
        if bridge is None:
            return
        if self._scope is not None and self._finished is not None and bridge.running:
            self._scope.cancel()
            finished = self._finished
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bridge.call(finished.wait), 5.0)
        await bridge.release()

    async def _watch_stake(self) -> None:
        """Keep ``stake`` in step with the NodeRegistry (every STAKE_EVERY_S)."""
        while True:
            try:
                account = getattr(self.chain, "account", None)
                listing = await self.chain.read("operators")
                mine = next(
                    (
                        o
                        for o in listing["operators"]
                        if account is not None and o["address"] == account.address
                    ),
                    None,
                )
                if mine is None:
                    self.stake = "not registered"
                else:
                    same = mine["peer_id"] == self.peer_id
                    self.stake = f"registered, {mine['stake']} wei staked" + (
                        "" if same else ", registered under another peer id"
                    )
            except Exception as exc:  # the chain may be starting or unreachable: say so
                self.stake = f"unknown ({type(exc).__name__})"
                await asyncio.sleep(2.0)
                continue
            await asyncio.sleep(STAKE_EVERY_S)

    def _advert(self, seq: int) -> Advert:
        # A mirror is not advertised: only the hosting node's entry leads to the session (a
        # third node that picked a mirror from the directory was refused by it).
        sessions = [
            s for s in self.jam.sessions() if not s.settings.private and s.hosted_by is None
        ][:MAX_SESSIONS]
        return Advert(
            peer_id=self.peer_id,
            http_url=self.http_url,
            version=node.__version__,
            capacity=self.config.session.max_sessions,
            load=sum(len(s.participants) for s in self.jam.sessions()),
            sessions=tuple(
                {
                    "id": s.id,
                    "name": s.settings.name,
                    "tempo_bpm": s.settings.tempo_bpm,
                    "key": s.settings.key,
                    "time_signature": "{}/{}".format(*s.settings.time_signature),
                    "participants": len(s.participants),
                }
                for s in sessions
            ),
            seq=seq,
            sent_at=time.time(),
            stake=self.stake[:80] if self.stake else None,
            addrs=tuple(self.addrs()[:MAX_ADDRS]),
        )

    def addrs(self) -> list[str]:
        """Multiaddrs this node listens on (with its peer id)."""
        return list(self.host.stats.listen_addrs) if self.host else []

    def network(self) -> dict[str, Any]:
        """This node and every live node it knows."""
        view, host = self.view, self.host
        assert view is not None
        assert host is not None
        return {
            "self": {
                "peer_id": self.peer_id,
                "addrs": self.addrs(),
                "http_url": self.http_url,
                "stake": self.stake,
            },
            "peers": [
                {
                    "peer_id": pid,
                    "http_url": p.advert.http_url,
                    "version": p.advert.version,
                    "capacity": p.advert.capacity,
                    "load": p.advert.load,
                    "sessions": len(p.advert.sessions),
                    "connected": p.connected,
                    "seen_s_ago": round(time.time() - p.seen_at, 2),
                    "stake": p.advert.stake,
                }
                for pid, p in sorted(view.peers.items())
            ],
            "rejected": dict(view.rejected),
            "departed": list(view.departed),
            "unknown_protocols": host.stats.unknown_protocols,
            "dht": {
                "providers": host.stats.dht_providers,
                "dials": host.stats.dht_dials,
                "errors": host.stats.dht_errors,
            }
            if self.config.p2p.dht
            else None,
            "published": host.stats.published,
            "received": host.stats.received,
            "bridges": self.federation.summary() if self.federation else None,
        }

    def stats(self) -> dict[str, Any]:
        """Figures for /metrics (zeros before the host runs)."""
        host, view = self.host, self.view
        peers = view.peers if view is not None else {}
        hs = host.stats if host is not None else None
        return {
            "peers": len(peers),
            "connected": sum(1 for p in peers.values() if p.connected),
            "published": hs.published if hs else 0,
            "received": hs.received if hs else 0,
            "dial_failures": hs.dial_failures if hs else 0,
            "repaired": hs.repaired if hs else 0,
            "rejected": dict(view.rejected) if view is not None else {},
            "unknown_protocols": hs.unknown_protocols if hs else 0,
            "dht_providers": hs.dht_providers if hs else 0,
            "dht_dials": hs.dht_dials if hs else 0,
            "bridge_requests": hs.bridge_requests if hs else 0,
            "bridge_errors": hs.bridge_errors if hs else 0,
            "bridge": dict(self.federation.stats) if self.federation else {},
            "links": sum(len(v) for v in self.federation.links.values()) if self.federation else 0,
        }

    def directory(self) -> list[dict[str, Any]]:
        """Public sessions here and on every live node."""
        own = [
            {**entry, "node": self.http_url, "peer_id": self.peer_id}
            for entry in self._advert(0).sessions
        ]
        assert self.view is not None
        return own + self.view.directory()
