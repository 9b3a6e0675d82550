"""Frozen, typed node configuration loaded from TOML, environment and flags.

Precedence (last wins): built-in defaults, the TOML file, ``JAMNET_<SECTION>__<KEY>``
environment variables, command-line flags. Unknown keys are rejected by name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.errors import ConfigError

FRAME_SIZES_MS = (5, 10, 20)
"""The frame sizes a session may have (Opus frames and mix clock periods, in ms)."""
ENV_PREFIX = "JAMNET_"
NOT_CONFIG = {"JAMNET_CONFIG", "JAMNET_KEY_PASSWORD", "JAMNET_KEY_PASSWORD_FILE"}
"""Variables with the prefix that are not config keys (the config file, key passwords)."""


@dataclass(frozen=True)
class HttpConfig:
    """Where the node's HTTP(S) API and web client listen."""

    host: str = "127.0.0.1"
    """Interface to bind; 0.0.0.0 serves the LAN (then use TLS: browsers need it for the mic)."""
    port: int = 8080
    """TCP port (0 picks a free one and prints it)."""
    tls: str = "off"
    """"off", "self-signed" (made once in the data dir) or "files" (cert_file + key_file)."""
    cert_file: str = ""
    """PEM certificate chain when tls = "files"."""
    key_file: str = ""
    """PEM private key when tls = "files"."""
    max_body_bytes: int = 64 * 1024
    """Largest accepted request body (SDP offers are ~5 KiB)."""
    body_timeout_s: float = 10.0
    """A request body must arrive within this long (HTTP 408 after it)."""
    header_timeout_s: float = 15.0
    """A connection must finish a request's headers within this long, and is closed after
    idling this long between requests."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (e.g. "127.0.0.1", "10.0.0.0/8") of reverse proxies in front of
    the node: from them, the client's address is the last X-Forwarded-For hop that is not a
    trusted proxy, so per-address limits (sign-in challenges, listens, the faucet, sessions)
    see each client, not the proxy. Empty: the header is ignored."""


@dataclass(frozen=True)
class MediaConfig:
    """The real-time audio path."""

    frame_ms: int = 10
    """Frame size of a session whose owner does not choose one: 5, 10 or 20 ms. It sets the
    session's mix clock period, renderer block, jitter-buffer unit and Opus frames. 10 ms is
    the default because it measured best for browsers (they capture in 10 ms blocks, so 5 ms
    frames gave them nothing: 44 ms browser to browser either way, against 66 ms at 20 ms),
    gives terminal clients ~26 ms mouth to ear, and holds 16 musicians (bench/RESULTS.md)."""
    browser_transport: str = "datachannel"
    """How the web page sends and hears audio when the browser can: "datachannel" (WebCodecs
    Opus over an unordered data channel, played by an AudioWorklet: bench/RESULTS.md) or
    "rtp" (WebRTC audio tracks). Browsers without WebCodecs always use "rtp"."""
    opus_application: str = "lowdelay"
    """libopus application of the node's encoders (and the CLI's): "lowdelay" (restricted
    low delay, CELT only: 2.5 ms look-ahead) or "audio" (6.5 ms look-ahead)."""
    sample_rate_hz: int = 48000
    """Mixing sample rate (Opus runs at 48 kHz)."""
    jitter_min_delay_ms: float = 0.0
    """Smallest playout delay a jitter buffer keeps beyond the fastest measured transit."""
    jitter_max_delay_ms: float = 160.0
    """Largest playout delay a jitter buffer may grow to."""
    uplink_bitrate_bps: int = 96000
    """Bitrate asked of clients for their mono uplink."""
    downlink_bitrate_bps: int = 128000
    """Bitrate of the node's stereo Opus encoder for each personal mix."""
    opus_complexity: int = 5
    """libopus encoder complexity 0-10 for personal mixes (CPU vs quality)."""
    mix_threads: int = 0
    """Threads that share each tick's Opus decoding and encoding (1-16); 0 picks the number
    of CPU cores, at most 4."""
    realtime_nice: int = -10
    """Nice value (-20 to 0) the real-time threads ask for (the event loop that carries the
    packets, the mix clock's threads), so other work on the machine does not delay or skip
    the mix; what they hand off (executors, the AI bandmate, child processes) stays at normal
    priority (node/media/priority.py). Needs CAP_SYS_NICE (root) or RLIMIT_NICE >= 20 - value
    (`ulimit -e 30`; docs/operators.md for containers); without either the node logs once and
    runs them at normal priority. 0 leaves their priority alone."""
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs ("stun:host:port", "turn:user:pass@host:port"); empty keeps ICE local."""
    outbound_queue_frames: int = 4
    """Per-listener outbound queue bound; on overflow the oldest frame is dropped."""
    inbound: str = "jitter"
    """"jitter" (the node's own jitter buffer) or "aiortc" (stock receive path: benchmarks only)."""


@dataclass(frozen=True)
class SessionConfig:
    """Limits for sessions hosted on this node."""

    max_sessions: int = 64
    """Most concurrent sessions."""
    sessions_per_owner: int = 3
    """Most live sessions one key may own on this node (more get HTTP 429)."""
    sessions_per_client: int = 8
    """Most live sessions created from one client address (keys are free, addresses less so)."""
    empty_expiry_s: float = 600.0
    """A session nobody human is in closes after this long (the bandmate does not count)."""
    ownerless_expiry_s: float = 300.0
    """When the owner has been gone this long, the bandmate (which only they control) stops;
    musicians still playing keep the session."""
    max_participants: int = 32
    """Most participants in one session, whatever its frame size."""
    max_participants_20ms: int = 32
    """Most participants in a 20 ms session: what bench/capacity.py measured the node holds
    in real time with a personal binaural mix each (bench/RESULTS.md)."""
    max_participants_10ms: int = 16
    """Most participants in a 10 ms session (measured like the 20 ms figure)."""
    max_participants_5ms: int = 8
    """Most participants in a 5 ms session (measured like the 20 ms figure: a band of 8 held
    in 10 runs of 10 of this code; older code failed 8 in one run of three to five)."""
    challenge_ttl_s: float = 120.0
    """How long a sign-in challenge stays valid."""
    challenges_per_minute: int = 30
    """Sign-in challenges one client address may ask for per minute (more get HTTP 429)."""
    token_ttl_s: float = 12 * 3600.0
    """How long a participant token stays valid."""
    media_timeout_s: float = 1.5
    """A connected musician from whom no audio arrived for this long is shown as lost (a
    killed client or a closed tab says no goodbye)."""
    reconnect_grace_s: float = 3.0
    """How long a lost musician keeps their place: audio flowing again or a new connection
    brings them back; then they leave every mix, the list and the lobby."""
    connect_timeout_s: float = 30.0
    """How long someone who joined may take to connect their audio before they are dropped."""


@dataclass(frozen=True)
class SpatialConfig:
    """Binaural (HRTF) rendering of every listener's personal mix."""

    sofa_file: str = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"
    """HRTF set (SOFA SimpleFreeFieldHRIR); the default is MIT KEMAR from Debian's libmysofa1."""
    hrir_taps: int = 320
    """HRIR length kept after resampling to 48 kHz; longer filters use more partitions."""
    binaural: bool = True
    """Whether listeners start with binaural rendering (else constant-power stereo panning)."""
    near_m: float = 2.0
    """Distance below which a source gets no louder (inverse-distance law reference)."""
    far_m: float = 40.0
    """Distance beyond which a source gets no quieter."""


@dataclass(frozen=True)
class ChainConfig:
    """Where the contracts live."""

    mode: str = "devnet"
    """"devnet" (an anvil the node starts, contracts deployed once per data dir),
    "external" (rpc_url + deployment_file) or "off"."""
    rpc_url: str = ""
    """JSON-RPC endpoint of the chain when mode = "external"."""
    deployment_file: str = ""
    """Deployment JSON (chain id, addresses, block) when mode = "external"."""
    devnet_port: int = 8545
    """Loopback port of the embedded anvil (0 picks a free one)."""
    keyfile: str = ""
    """The node's own key (V3 keystore; password from JAMNET_KEY_PASSWORD) for the
    transactions it sends; default <data_dir>/chain/node-key.json, made on first use."""
    spark_master: str = "local[*]"
    """Where a royalty period's roll-up (spark_jobs/royalties.py) runs: local[*], local[2],
    or a cluster's spark://host:7077."""
    rewards: bool = True
    """Meter the musician-minutes this node serves and their quality, report each ended
    NodeRewards period, countersign peer nodes' shared minutes, dispute reports that leave
    this node's countersignature out (node.operator)."""
    rewards_check_s: float = 30.0
    """How often the rewards agent looks for ended periods and peers' reports."""


@dataclass(frozen=True)
class AiConfig:
    """The AI bandmate and the compose/improvise API."""

    enabled: bool = True
    """Load the models and offer compose, improvise and the bandmate."""
    models_dir: str = ""
    """Directory of NAME.pt + NAME.card.json (default: the models shipped with jamnet)."""
    queue: int = 8
    """Compose/improvise requests waiting for the model thread; more get HTTP 503."""
    max_bandmates: int = 8
    """Bandmates playing at once on this node."""


@dataclass(frozen=True)
class P2PConfig:
    """The libp2p host: discovery and the gossiped session directory."""

    enabled: bool = True
    """Join the jamnet network (off: a lone node)."""
    listen: str = "/ip4/127.0.0.1/tcp/4001"
    """Multiaddr to listen on (use 0.0.0.0 to be reachable on the LAN; tcp/0: any port)."""
    bootstrap: tuple[str, ...] = ()
    """Multiaddrs with /p2p/<peer id> of nodes to connect to (redialled while down)."""
    advert_interval_s: float = 0.5
    """How often this node gossips its advert."""
    peer_ttl_s: float = 1.75
    """A node not heard from for this long is dropped from the view."""
    mdns: bool = True
    """Find nodes on the LAN by mDNS, on the listen address's interface only (off when
    listening on loopback, where there is nobody to find)."""
    dht: bool = True
    """Announce this node in the jamnet Kademlia DHT and dial the nodes found there, so
    nodes connect directly rather than only through their bootstrap peers."""


@dataclass(frozen=True)
class LogConfig:
    """Structured logging."""

    level: str = "info"
    """debug, info, warning or error."""
    json: bool = False
    """One JSON object per line instead of human-readable lines."""


@dataclass(frozen=True)
class NodeConfig:
    """Root configuration passed down to every service."""

    data_dir: str = "data"
    """Where the SQLite file, recordings and TLS material live."""
    http: HttpConfig = field(default_factory=HttpConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    spatial: SpatialConfig = field(default_factory=SpatialConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    ai: AiConfig = field(default_factory=AiConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def participant_limit(self, frame_ms: int) -> int:
        """The most participants a session of ``frame_ms`` frames admits."""
        limit: int = getattr(self.session, f"max_participants_{frame_ms}ms")
        return min(self.session.max_participants, limit)

    @property
    def data_path(self) -> Path:
        """The data directory as a path."""
        return Path(self.data_dir)

    def validate(self) -> NodeConfig:
        """Check cross-field ranges; returns self so calls chain."""
        checks: list[tuple[bool, str]] = [
            (0 <= self.http.port <= 65535, "http.port must be 0-65535"),
            (0.5 <= self.http.body_timeout_s <= 600, "http.body_timeout_s must be 0.5-600"),
            (0.5 <= self.http.header_timeout_s <= 600, "http.header_timeout_s must be 0.5-600"),
            (
                all(_is_network(n) for n in self.http.trusted_proxies),
                "http.trusted_proxies must be IP addresses or networks like 10.0.0.0/8",
            ),
            (
                self.http.tls in {"off", "self-signed", "files"},
                'http.tls must be "off", "self-signed" or "files"',
            ),
            (
                self.http.tls != "files" or bool(self.http.cert_file and self.http.key_file),
                'http.tls = "files" needs http.cert_file and http.key_file',
            ),
            (1 <= self.ai.queue <= 1024, "ai.queue must be 1-1024"),
            (
                0.1 <= self.p2p.advert_interval_s <= 60,
                "p2p.advert_interval_s must be 0.1-60",
            ),
            (
                self.p2p.peer_ttl_s > self.p2p.advert_interval_s,
                "p2p.peer_ttl_s must be longer than p2p.advert_interval_s",
            ),
            (self.p2p.listen.startswith("/ip"), "p2p.listen must be a multiaddr like /ip4/…/tcp/N"),
            (0 <= self.ai.max_bandmates <= 64, "ai.max_bandmates must be 0-64"),
            (self.media.frame_ms in FRAME_SIZES_MS, "media.frame_ms must be 5, 10 or 20"),
            (
                self.media.browser_transport in {"datachannel", "rtp"},
                'media.browser_transport must be "datachannel" or "rtp"',
            ),
            (
                self.media.opus_application in {"lowdelay", "audio"},
                'media.opus_application must be "lowdelay" or "audio"',
            ),
            (self.media.sample_rate_hz == 48000, "media.sample_rate_hz must be 48000 (Opus)"),
            (
                0 <= self.media.jitter_min_delay_ms <= self.media.jitter_max_delay_ms <= 1000,
                "need 0 <= media.jitter_min_delay_ms <= media.jitter_max_delay_ms <= 1000",
            ),
            (0 <= self.media.opus_complexity <= 10, "media.opus_complexity must be 0-10"),
            (0 <= self.media.mix_threads <= 16, "media.mix_threads must be 0-16 (0: automatic)"),
            (
                -20 <= self.media.realtime_nice <= 0,
                "media.realtime_nice must be -20 to 0 (0: unchanged)",
            ),
            (
                6000 <= self.media.downlink_bitrate_bps <= 510000,
                "media.downlink_bitrate_bps must be 6000-510000",
            ),
            (
                6000 <= self.media.uplink_bitrate_bps <= 510000,
                "media.uplink_bitrate_bps must be 6000-510000",
            ),
            (1 <= self.media.outbound_queue_frames <= 100, "media.outbound_queue_frames 1-100"),
            (
                self.media.inbound in {"jitter", "aiortc"},
                'media.inbound must be "jitter" or "aiortc"',
            ),
            (
                self.chain.mode in {"devnet", "external", "off"},
                'chain.mode must be "devnet", "external" or "off"',
            ),
            (
                self.chain.mode != "external"
                or bool(self.chain.rpc_url and self.chain.deployment_file),
                'chain.mode = "external" needs chain.rpc_url and chain.deployment_file',
            ),
            (
                not self.chain.rpc_url or self.chain.rpc_url.startswith(("http://", "https://")),
                "chain.rpc_url must be an http(s) URL",
            ),
            (0 <= self.chain.devnet_port <= 65535, "chain.devnet_port must be 0-65535"),
            (
                0.1 <= self.chain.rewards_check_s <= 3600,
                "chain.rewards_check_s must be 0.1-3600 seconds",
            ),
            (32 <= self.spatial.hrir_taps <= 4096, "spatial.hrir_taps must be 32-4096"),
            (
                0.1 <= self.spatial.near_m < self.spatial.far_m <= 1000,
                "need 0.1 <= spatial.near_m < spatial.far_m <= 1000",
            ),
            (1 <= self.session.max_participants <= 256, "session.max_participants must be 1-256"),
            (
                1 <= self.session.sessions_per_owner <= self.session.max_sessions,
                "session.sessions_per_owner must be 1-session.max_sessions",
            ),
            (
                1 <= self.session.sessions_per_client <= self.session.max_sessions,
                "session.sessions_per_client must be 1-session.max_sessions",
            ),
            (1 <= self.session.empty_expiry_s <= 7 * 86400, "session.empty_expiry_s 1-604800"),
            (
                1 <= self.session.ownerless_expiry_s <= 7 * 86400,
                "session.ownerless_expiry_s 1-604800",
            ),
            *(
                (
                    1 <= getattr(self.session, f"max_participants_{ms}ms") <= 256,
                    f"session.max_participants_{ms}ms must be 1-256",
                )
                for ms in FRAME_SIZES_MS
            ),
            (1 <= self.session.max_sessions <= 10000, "session.max_sessions must be 1-10000"),
            (self.session.challenge_ttl_s > 0, "session.challenge_ttl_s must be > 0"),
            (self.session.challenges_per_minute >= 1, "session.challenges_per_minute must be >= 1"),
            (
                0.2 <= self.session.media_timeout_s <= 60,
                "session.media_timeout_s must be 0.2-60",
            ),
            (
                0 <= self.session.reconnect_grace_s <= 600,
                "session.reconnect_grace_s must be 0-600",
            ),
            (
                1 <= self.session.connect_timeout_s <= 3600,
                "session.connect_timeout_s must be 1-3600",
            ),
            (
                self.log.level in {"debug", "info", "warning", "error"},
                "log.level must be debug, info, warning or error",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _coerce(value: Any, annotation: Any, where: str) -> Any:  # noqa: PLR0911 - one per type
    """Convert a TOML/env/flag value to the annotated type, or raise naming ``where``."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a table")
        return _build(annotation, value, where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
    if annotation is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be finite")
        return number
    if annotation is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where} must be a list")
        return tuple(str(item).strip() for item in items if str(item).strip())
    if isinstance(annotation, types.UnionType):  # pragma: no cover - no optional fields yet
        return value
    raise ConfigError(f"{where}: unsupported type {annotation!r}")  # pragma: no cover


def _build(cls: type[Any], values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s}; known keys: {', '.join(sorted(names))}"
        )
    kwargs = {
        key: _coerce(value, hints[key], f"{where}.{key}" if where else key)
        for key, value in values.items()
    }
    return cls(**kwargs)


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``JAMNET_HTTP__PORT=9000`` → ``{"http": {"port": "9000"}}``; ``JAMNET_DATA_DIR``: root."""
    result: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        cursor = result
        for part in path[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[path[-1]] = value
    return result


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> NodeConfig:
    """Load the root config: defaults ← TOML file ← environment ← explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = path or environ.get("JAMNET_CONFIG")
    if path:
        file = Path(path)
        try:
            values = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
    values = _merge(values, env_overrides(environ))
    values = _merge(values, overrides or {})
    config: NodeConfig = _build(NodeConfig, values, "")
    return config.validate()
