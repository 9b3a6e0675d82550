"""Composition root: builds the node's services, runs them, shuts them down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import os
import signal
import ssl
from pathlib import Path

from aiohttp import web

from node.ai.service import AiService
from node.api.protocol import JsonErrorsRunner
from node.api.server import build_app
from node.chain.service import ChainService
from node.config import NodeConfig
from node.errors import ConfigError
from node.heap import HeapKeeper
from node.identity import ChallengeBook
from node.jam import JamService
from node.listens import ListenBook
from node.media import priority
from node.media.engine import MixClocks
from node.metrics import Metrics
from node.operator import OperatorRewards
from node.p2p.service import P2PService
from node.royalties import Royalties
from node.store.db import Store
from node.works import Works

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SHUTDOWN_GRACE_S = 5.0


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """Make (once) a self-signed certificate for ``host`` in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for candidate in {host, "127.0.0.1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(candidate)))
        except ValueError:
            names.append(x509.DNSName(candidate))
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"jamnet node {host}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def ssl_context(config: NodeConfig) -> ssl.SSLContext | None:
    """TLS per config: off, self-signed (made in the data dir) or given files."""
    http = config.http
    if http.tls == "off":
        return None
    if http.tls == "self-signed":
        cert, key = self_signed_certificate(config.data_path, http.host)
    else:
        cert, key = Path(http.cert_file), Path(http.key_file)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return context


class Node:
    """A running node: ``async with Node(config) as node`` serves until the block exits."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.store: Store | None = None
        self.clock: MixClocks | None = None
        """The mix clocks (one per frame size in use)."""
        self.service: JamService | None = None
        self.chain: ChainService | None = None
        self.ai: AiService | None = None
        self.p2p: P2PService | None = None
        self.works: Works | None = None
        self.listens: ListenBook | None = None
        self.royalties: Royalties | None = None
        self.operator: OperatorRewards | None = None
        """Meters what this node serves and reports it to NodeRewards (``node.operator``)."""
        self._settle: asyncio.Task[None] | None = None
        self._works_task: asyncio.Task[None] | None = None
        self._loop_nice: int | None = None

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open storage, start the mix clock, the sessions service and the HTTP server."""
        try:
            await self._start()
        except BaseException:
            await self.stop()  # whatever had started is stopped again
            raise

    async def _start(self) -> None:
        config = self.config
        config.data_path.mkdir(parents=True, exist_ok=True)
        context = ssl_context(config)
        self.store = Store(config.data_path / "jamnet.sqlite3")
        metrics = Metrics()
        loop = asyncio.get_running_loop()
        # The loop carries every packet: it runs raised, and what it hands off does not.
        self._loop_nice = priority.current()
        priority.raise_this_thread(config.media.realtime_nice, "the event loop")
        priority.hand_off_at_normal(loop)
        self.clock = MixClocks(
            loop,
            on_tick_time=metrics.tick_seconds.observe,
            on_node_latency=metrics.node_added_seconds.observe,
            threads=config.media.mix_threads or min(4, os.cpu_count() or 1),
        )
        if config.chain.mode != "off":
            self.chain = ChainService(config)
            await self.chain.start()
        clocks = self.clock
        self.service = JamService(config, self.store, clocks)
        self.ai = AiService(config, self.service)
        metrics.watch_ai(self.ai.stats)
        if config.p2p.enabled:
            self.p2p = P2PService(config, self.service, self.chain)
            metrics.watch_p2p(self.p2p.stats)
        metrics.watch(lambda: clocks.stats, self.service.mixers)
        loop_parts = None
        if self.chain is not None and self.chain.deployment is not None:
            data = config.data_path / "loop"
            data.mkdir(parents=True, exist_ok=True)
            self.works = Works(
                data / "works.sqlite3", self.store, self.service.recordings, self.chain
            )
            self.listens = ListenBook(data / "listens.sqlite3", self.chain.deployment.chain_id)
            self.royalties = Royalties(
                data, self.chain, self.listens, master=config.chain.spark_master
            )
            loop_parts = (self.works, self.listens, self.royalties)
            if config.chain.rewards:
                p2p = self.p2p
                self.operator = OperatorRewards(
                    data,
                    self.chain,
                    self.service,
                    clocks,
                    shared=lambda: p2p.federation if p2p is not None else None,
                    ask=p2p.ask if p2p is not None else None,
                    check_every_s=config.chain.rewards_check_s,
                )
                if p2p is not None:
                    p2p.on_served = self.operator.answer
        challenges = ChallengeBook(
            f"{config.http.host}:{config.http.port}", config.session.challenge_ttl_s
        )
        app = build_app(
            self.service,
            challenges,
            self.clock,
            metrics,
            config.http.max_body_bytes,
            ROOT,
            chain=self.chain,
            ai=self.ai,
            p2p=self.p2p,
            loop=loop_parts,
            operator=self.operator,
            body_timeout_s=config.http.body_timeout_s,
        )
        await self.service.start()
        await self.ai.start()
        self.clock.start()
        self.service.heap.start()  # one full collector pass, before anyone can connect
        # The keep-alive timer also bounds unfinished headers (node.api.body).
        self._runner = JsonErrorsRunner(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE_S,
            keepalive_timeout=config.http.header_timeout_s,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.http.host, config.http.port, ssl_context=context)
        await site.start()
        port = config.http.port
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            port = sockets[0].getsockname()[1]
        scheme = "https" if context else "http"
        host = "localhost" if config.http.host in {"127.0.0.1", "0.0.0.0"} else config.http.host  # noqa: S104
        self.url = f"{scheme}://{host}:{port}/"
        log.info("node listening", extra={"url": self.url, "data_dir": str(config.data_path)})
        if self.p2p is not None:
            await self.p2p.start(self.url.replace("://localhost:", "://127.0.0.1:"))
        if self.chain is not None:
            peer_id = self.p2p.peer_id if self.p2p is not None else f"jamnet-http:{self.url}"
            try:
                await self.chain.register_devnet_node(peer_id, self.url)
            except Exception as exc:  # the node serves; attesting takes waits for a registration
                log.warning("devnet: registering this node in NodeRegistry failed: %s", exc)
        self._settle = asyncio.create_task(
            _mark_when_loaded(self.ai, self.service.heap), name="heap-mark"
        )
        if self.works is not None and self.royalties is not None:
            self.royalties.kick()  # resumes a settlement a stop or a crash interrupted
            self._works_task = asyncio.create_task(_refresh_works(self.works), name="works")
        if self.operator is not None:
            self.operator.start()

    async def stop(self) -> None:
        """Stop everything within a bound (idempotent)."""
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        if self._works_task is not None:
            self._works_task.cancel()
            self._works_task = None
        if self.operator is not None:
            await self.operator.stop()
            self.operator.close()
            self.operator = None
        if self.royalties is not None:
            await self.royalties.stop()
            self.royalties.close()
            self.royalties = None
        if self.listens is not None:
            self.listens.close()
            self.listens = None
        if self.works is not None:
            self.works.close()
            self.works = None
        if self.p2p is not None:
            await self.p2p.stop()
            self.p2p = None
        if self.ai is not None:
            await self.ai.stop()
            self.ai = None
        if self.service is not None:
            try:
                await asyncio.wait_for(self.service.stop(), SHUTDOWN_GRACE_S)
            except TimeoutError:
                log.warning("sessions did not stop in time")
            self.service = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.clock is not None:
            self.clock.stop()
            self.clock = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.chain is not None:
            await self.chain.stop()
            self.chain = None
        if self._loop_nice is not None:
            priority.set_this_thread(self._loop_nice)
            self._loop_nice = None


async def _refresh_works(works: Works) -> None:
    """Move queued registrations on (the outbox, then their work ids) every few seconds."""
    while True:
        await asyncio.sleep(2.0)
        try:
            await works.refresh()
        except Exception as exc:  # the chain may be down a while: retried
            log.warning("works: %s (retrying)", exc)


async def _mark_when_loaded(ai: AiService, heap: HeapKeeper) -> None:
    """Once the models' background load is over, freeze again at the next idle moment."""
    await ai.ready()
    if ai.status == "ready":
        heap.mark()


async def serve(config: NodeConfig, announce: bool = True) -> None:
    """Run a node until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Node(config) as running:
        if announce:
            print(f"jamnet node is up: open {running.url}", flush=True)
            if config.http.tls == "self-signed":
                print("(self-signed certificate: accept it in the browser once)", flush=True)
        await stop.wait()
        print("jamnet node stopping…", flush=True)
