"""The libp2p host (trio side): Noise-only TCP, yamux, gossipsub adverts, bootstrap dialling.

Runs inside ``TrioBridge``. Measured py-libp2p behaviour and what this module does about it:

- ``new_host`` accepts plaintext, secio and TLS peers unless told otherwise: the security
  options are Noise alone.
- A burst of publishes loses messages (32 of 100 arrived here in a trial): adverts are paced,
  one per node per ``advert_interval_s``; and gossipsub's per-topic rate limit (10 messages/s
  per forwarding peer by default, over which it drops silently) is raised to
  ``RATE_LIMIT_PER_S`` because one relay forwards every node's adverts.
- Exceptions inside stream handlers vanish in the library: our loops catch, log and count.
- A peer whose connection dies uncleanly keeps its pubsub stream and a half-open connection,
  and when it comes back nothing flows (streams time out): peers that fall silent are
  dropped from pubsub and disconnected here, and connected peers that pubsub does not know
  are registered again.
- Every ``connect`` waits about 250 ms (measured): dialling runs in its own task, so it
  never delays adverts or the view.
- A stream for a protocol nobody handles is answered "na" and reset inside multiselect,
  silently: the handler table counts such requests (``unknown_protocols``).
- py-libp2p's mDNS (``enable_mDNS``) multicasts on every interface and only fills the
  peerstore (it never connects), calling its handlers from zeroconf's thread. Here mDNS runs
  on the listen address's interface alone, and found peers join the dial list (handed to
  trio through its token).
- A Kademlia DHT (py-libp2p's KadDHT, server mode, under our own ``/jamnet`` protocol
  prefix so it never mixes with IPFS's) holds a provider record per node under one key:
  every ``DHT_EVERY_S`` a node announces itself and dials providers it has no connection
  to. Gossip already relays adverts through any path; the DHT turns that into direct
  connections, so the network does not hang on its bootstrap nodes.
- Reading past the end of a stream raises, and a handler's exception is logged at debug and
  dropped: the bridge protocol frames each message with its length, reads exactly that,
  answers every failure with an error message and counts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service

from node.p2p.advert import MAX_ADVERT_BYTES, Advert, NetworkView, encode

log = logging.getLogger(__name__)

TOPIC = "jamnet/nodes/1"
GOSSIP_PROTOCOLS = [TProtocol("/meshsub/1.1.0"), TProtocol("/meshsub/1.0.0")]
RATE_LIMIT_PER_S = 200.0
DIAL_EVERY_S = 2.0
SWEEP_EVERY_S = 0.1
"""How often the view drops silent nodes: a death is noticed within ``peer_ttl_s`` plus this."""
DHT_EVERY_S = 5.0
DHT_KEY = "1220" + hashlib.sha256(b"jamnet/nodes/1").hexdigest()  # a sha2-256 multihash
BRIDGE_PROTOCOL = TProtocol("/jamnet/bridge/1.0.0")
MAX_FRAME_BYTES = 64 * 1024
STREAM_TIMEOUT_S = 10.0

BridgeHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers one bridge request (sender's peer id, request) — runs on the trio side."""


class StreamError(ConnectionError):
    """A bridge request that could not be sent or answered."""


async def write_frame(stream: Any, message: dict[str, Any]) -> None:
    """One length-prefixed JSON message."""
    data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_FRAME_BYTES:
        raise StreamError(f"message of {len(data)} bytes is over {MAX_FRAME_BYTES}")
    await stream.write(struct.pack(">I", len(data)) + data)


async def read_frame(stream: Any) -> dict[str, Any]:
    """Exactly one length-prefixed JSON object (bounded); raises ``StreamError``."""

    async def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            try:
                chunk = await stream.read(n - len(data))
            except Exception as exc:  # py-libp2p raises at end of stream
                raise StreamError(f"stream ended ({type(exc).__name__})") from None
            if not chunk:
                raise StreamError("stream ended")
            data += chunk
        return data

    (size,) = struct.unpack(">I", await exactly(4))
    if size > MAX_FRAME_BYTES:
        raise StreamError(f"message of {size} bytes is over {MAX_FRAME_BYTES}")
    try:
        message = json.loads(await exactly(size))
    except ValueError:
        raise StreamError("message is not JSON") from None
    if not isinstance(message, dict):
        raise StreamError("message is not a JSON object")
    return message


class _CountingHandlers(dict[Any, Any]):
    """multiselect's protocol table; a lookup that misses is a stream nobody handles."""

    def __init__(self, table: dict[Any, Any], on_miss: Callable[[], None]) -> None:
        super().__init__(table)
        self._on_miss = on_miss

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        if not found and key:
            self._on_miss()
        return found


@dataclass
class HostStats:
    """Counters the node exports."""

    published: int = 0
    received: int = 0
    dial_failures: int = 0
    loop_errors: int = 0
    repaired: int = 0
    unknown_protocols: int = 0
    bridge_requests: int = 0
    bridge_errors: int = 0
    dht_providers: int = 0
    dht_dials: int = 0
    dht_errors: int = 0
    listen_addrs: list[str] = field(default_factory=list)


class P2PHost:
    """One node's libp2p presence."""

    def __init__(
        self,
        key_pair: KeyPair,
        listen: str,
        bootstrap: list[str],
        view: NetworkView,
        make_advert: Callable[[int], Advert],
        advert_interval_s: float,
        on_bridge: BridgeHandler | None = None,
        mdns: bool = False,
        dht: bool = False,
    ) -> None:
        self.key_pair = key_pair
        self.listen = multiaddr.Multiaddr(listen)
        self.bootstrap = [multiaddr.Multiaddr(a) for a in bootstrap]
        self.view = view
        self.make_advert = make_advert
        self.interval = advert_interval_s
        self.on_bridge = on_bridge
        self.mdns = mdns
        self.dht: Any = None
        self.use_dht = dht
        self.found: dict[str, list[multiaddr.Multiaddr]] = {}
        """Peers mDNS found (peer id → addresses): dialled like bootstrap peers."""
        self.stats = HostStats()
        self.peer_id = ID.from_pubkey(key_pair.public_key).to_base58()
        self.host: Any = None
        self.pubsub: Pubsub | None = None
        # Sequence numbers start at the clock in ms: a restarted node outranks its old adverts.
        self._seq = int(time.time() * 1000)

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, join the topic, and advertise until cancelled."""
        noise = NoiseTransport(self.key_pair, noise_privkey=new_x25519().private_key)
        host = new_host(
            key_pair=self.key_pair,
            sec_opt={NOISE_PROTOCOL: noise},
            muxer_preference="YAMUX",
        )
        gossipsub = GossipSub(
            GOSSIP_PROTOCOLS,
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=1,
            max_messages_per_topic_per_second=RATE_LIMIT_PER_S,
        )
        pubsub = Pubsub(host, gossipsub, strict_signing=True,
                        max_inbound_rpc_size=4 * MAX_ADVERT_BYTES)  # fmt: skip
        self.host, self.pubsub = host, pubsub
        multiselect = host.get_mux()
        multiselect.handlers = _CountingHandlers(multiselect.handlers, self._unknown_protocol)
        host.set_stream_handler(BRIDGE_PROTOCOL, self._bridge_stream)
        async with (
            host.run([self.listen]),
            background_trio_service(pubsub),
            background_trio_service(gossipsub),
        ):
            await pubsub.wait_until_ready()
            subscription = await pubsub.subscribe(TOPIC)
            self.stats.listen_addrs = [str(a) for a in host.get_addrs()]
            mdns = await self._start_mdns(host) if self.mdns else None
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._receive, subscription)
                    nursery.start_soon(self._advertise)
                    nursery.start_soon(self._dial)
                    nursery.start_soon(self._expire, nursery)
                    if self.use_dht:
                        nursery.start_soon(self._run_dht, host)
                    task_status.started(self.stats.listen_addrs)
                    await trio.sleep_forever()
            finally:
                if mdns is not None:
                    await self._stop_mdns(*mdns)

    async def _run_dht(self, host: Any) -> None:
        from libp2p.kad_dht.kad_dht import DHTMode, KadDHT

        dht = KadDHT(host, DHTMode.SERVER, protocol_prefix=TProtocol("/jamnet"),
                     enable_values=False)  # fmt: skip
        self.dht = dht
        async with background_trio_service(dht):
            while True:
                await trio.sleep(DHT_EVERY_S)
                try:
                    await self._dht_round(dht)
                except Exception as exc:
                    self.stats.dht_errors += 1
                    log.debug("DHT round failed: %s", exc)

    async def _dht_round(self, dht: Any) -> None:
        """Announce this node under the jamnet key; dial providers we are not connected to."""
        connected = self.connected_peers()
        for pid in connected:
            with trio.move_on_after(2):
                await dht.add_peer(ID.from_base58(pid))
        with trio.move_on_after(5):
            await dht.provide(DHT_KEY)
        providers: list[Any] = []
        with trio.move_on_after(5):
            providers = await dht.find_providers(DHT_KEY)
        self.stats.dht_providers = len(providers)
        for info in providers:
            pid = info.peer_id.to_base58()
            if pid == self.peer_id or pid in connected or not info.addrs:
                continue
            with trio.move_on_after(5):
                try:
                    await self.host.connect(info)
                    self.stats.dht_dials += 1
                    log.info("connected to %s, found in the DHT", pid)
                except Exception as exc:
                    self.stats.dial_failures += 1
                    log.debug("dial %s (DHT) failed: %s", pid, exc)

    async def _start_mdns(self, host: Any) -> tuple[Any, Any, Any, Any]:
        """Announce this node and listen for others on the listen interface only."""
        from libp2p.discovery.events.peerDiscovery import peerDiscovery
        from libp2p.discovery.mdns.broadcaster import PeerBroadcaster
        from libp2p.discovery.mdns.listener import PeerListener
        from libp2p.discovery.mdns.mdns import SERVICE_TYPE
        from libp2p.discovery.mdns.utils import stringGen
        from zeroconf import Zeroconf

        address = str(self.listen).split("/")[2]
        token = trio.lowlevel.current_trio_token()

        def found(info: Any) -> None:  # zeroconf's thread
            pid = info.peer_id.to_base58()
            if pid != self.peer_id:
                token.run_sync_soon(self.found.__setitem__, pid, list(info.addrs))

        def start() -> tuple[Any, Any, Any]:
            zc = Zeroconf(interfaces=[address])
            name = f"{stringGen(63)}.{SERVICE_TYPE}"
            port = int(str(self.listen).split("/")[4])
            broadcaster = PeerBroadcaster(zc, SERVICE_TYPE, name, self.peer_id, port, host=host)
            listener = PeerListener(host.get_peerstore(), zc, SERVICE_TYPE, name)
            broadcaster.register()
            return zc, broadcaster, listener

        peerDiscovery.register_peer_discovered_handler(found)
        zc, broadcaster, listener = await trio.to_thread.run_sync(start)
        log.info("mDNS on %s", address)
        return zc, broadcaster, listener, found

    async def _stop_mdns(self, zc: Any, broadcaster: Any, listener: Any, found: Any) -> None:
        from libp2p.discovery.events.peerDiscovery import peerDiscovery

        peerDiscovery.unregister_peer_discovered_handler(found)

        def stop() -> None:
            broadcaster.unregister()
            listener.stop()
            zc.close()

        with trio.move_on_after(5) as scope:
            scope.shield = True  # runs while the host is being cancelled
            await trio.to_thread.run_sync(stop)

    async def _receive(self, subscription: Any) -> None:
        while True:
            message = await subscription.get()
            self.stats.received += 1
            try:
                sender = ID(message.from_id).to_base58()
            except Exception:
                sender = None
            try:
                self.view.accept(bytes(message.data), sender)
            except Exception:
                self.stats.loop_errors += 1
                log.exception("advert handling failed")

    def _unknown_protocol(self) -> None:
        self.stats.unknown_protocols += 1

    async def _bridge_stream(self, stream: Any) -> None:
        """Serve one bridge request: read it, answer it, close. Never raises."""
        self.stats.bridge_requests += 1
        sender = stream.muxed_conn.peer_id.to_base58()
        try:
            with trio.fail_after(STREAM_TIMEOUT_S):
                request = await read_frame(stream)
                if self.on_bridge is None:
                    answer: dict[str, Any] = {"ok": False, "error": "bridging is off here"}
                else:
                    answer = await self.on_bridge(sender, request)
                await write_frame(stream, answer)
        except Exception as exc:
            self.stats.bridge_errors += 1
            log.info("bridge request from %s failed: %s", sender, exc)
            with trio.move_on_after(1):
                with contextlib.suppress(Exception):
                    await write_frame(stream, {"ok": False, "error": str(exc)[:200]})
        finally:
            with trio.move_on_after(1):
                with contextlib.suppress(Exception):
                    await stream.close()

    async def request(self, peer_id: str, addrs: list[str], message: dict[str, Any]) -> Any:
        """Send one bridge request to ``peer_id`` (dialling ``addrs`` if needed); its answer."""
        target = ID.from_base58(peer_id)
        with trio.fail_after(STREAM_TIMEOUT_S):
            if target not in self.host.get_network().connections:
                maddrs = []
                for addr in addrs:
                    try:
                        maddrs.append(multiaddr.Multiaddr(addr.split("/p2p/")[0]))
                    except Exception as exc:
                        log.debug("advertised address %r is not a multiaddr: %s", addr, exc)
                try:
                    await self.host.connect(PeerInfo(target, maddrs))
                except Exception as exc:
                    raise StreamError(f"cannot reach node {peer_id}: {exc}") from None
            try:
                stream = await self.host.new_stream(target, [BRIDGE_PROTOCOL])
            except Exception as exc:
                raise StreamError(f"node {peer_id} refused a bridge stream: {exc}") from None
            try:
                await write_frame(stream, message)
                return await read_frame(stream)
            finally:
                with contextlib.suppress(Exception):
                    await stream.close()

    async def publish_raw(self, data: bytes) -> None:
        """Publish bytes on the advert topic as they are (tests and tools)."""
        assert self.pubsub is not None
        await self.pubsub.publish(TOPIC, data)

    async def _advertise(self) -> None:
        assert self.pubsub is not None
        while True:
            self._seq += 1
            try:
                await self.pubsub.publish(TOPIC, encode(self.make_advert(self._seq),
                                                        self.key_pair.private_key))  # fmt: skip
                self.stats.published += 1
            except Exception:
                self.stats.loop_errors += 1
                log.exception("publishing the advert failed")
            await trio.sleep(self.interval)

    def connected_peers(self) -> set[str]:
        """Peer ids with an open connection."""
        if self.host is None:
            return set()
        return {pid.to_base58() for pid in self.host.get_network().connections}

    async def _dial(self) -> None:
        while True:
            connected = self.connected_peers()
            for address in self.bootstrap:
                try:
                    info = info_from_p2p_addr(address)
                except Exception:
                    self.stats.dial_failures += 1
                    continue
                if info.peer_id.to_base58() in connected:
                    continue
                with trio.move_on_after(5):
                    try:
                        await self.host.connect(info)
                    except Exception as exc:
                        self.stats.dial_failures += 1
                        log.debug("dial %s failed: %s", address, exc)
            for pid, maddrs in list(self.found.items()):
                if pid in connected or pid in self.view.peers:
                    continue
                with trio.move_on_after(5):
                    try:
                        await self.host.connect(PeerInfo(ID.from_base58(pid), maddrs))
                        log.info("connected to %s, found by mDNS", pid)
                    except Exception as exc:
                        self.stats.dial_failures += 1
                        log.debug("dial %s (mDNS) failed: %s", pid, exc)
            await trio.sleep(DIAL_EVERY_S)

    async def _expire(self, nursery: trio.Nursery) -> None:
        """Sweep the view every ``SWEEP_EVERY_S``. Repairs (which can wait on a dead connection for
        seconds) run in their own tasks, so a slow one never delays noticing the next death."""
        pubsub = self.pubsub
        assert pubsub is not None
        repairing: set[Any] = set()

        async def forget(peer_id: Any) -> None:
            try:
                # Its connection may be half-open: close it so a comeback starts clean.
                with trio.move_on_after(2):
                    await self.host.disconnect(peer_id)
            except Exception as exc:
                log.debug("closing %s: %s", peer_id, exc)
            finally:
                repairing.discard(peer_id)

        async def register(peer_id: Any) -> None:
            try:
                with trio.move_on_after(2):
                    await pubsub._handle_new_peer_safe(peer_id)
            finally:
                repairing.discard(peer_id)

        while True:
            connected = self.connected_peers()
            for pid, peer in self.view.peers.items():
                peer.connected = pid in connected
            gone = self.view.expire(time.time())
            if gone:
                log.info("nodes gone silent: %s", ", ".join(gone))
            for pid in gone:
                # py-libp2p keeps a dead peer's pubsub stream when its connection dies without
                # a clean close; then a reconnect never re-registers it. Forget it ourselves.
                peer_id = ID.from_base58(pid)
                if peer_id in pubsub.peers:
                    pubsub._handle_dead_peer(peer_id)
                    self.stats.repaired += 1
                if peer_id not in repairing:
                    repairing.add(peer_id)
                    nursery.start_soon(forget, peer_id)
            for peer_id in list(self.host.get_network().connections):
                # connected, but pubsub never registered it
                if peer_id not in pubsub.peers and peer_id not in repairing:
                    repairing.add(peer_id)
                    nursery.start_soon(register, peer_id)
            await trio.sleep(SWEEP_EVERY_S)
