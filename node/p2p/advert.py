"""Node adverts and the network view built from them: plain values, no I/O.

Every node publishes an advert on the gossip topic every few seconds: who it is (peer id and
public key), where its HTTP API is, its version, capacity and load, its public sessions, and
whether it is a registered operator. The advert is signed with the node's libp2p key, so a
relay cannot alter it and nobody can speak for another peer id. ``NetworkView`` keeps the
newest advert of every node and forgets nodes that fall silent.
"""

from __future__ import annotations

import collections
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from libp2p.crypto.keys import PrivateKey
from libp2p.crypto.serialization import deserialize_public_key
from libp2p.peer.id import ID

from node.inputs import SESSION_ID_RE, SESSION_NAME_MAX

ADVERT_VERSION = 1
MAX_ADVERT_BYTES = 32 * 1024
MAX_SESSIONS = 64
CLOCK_SKEW_S = 30.0
MAX_REMEMBERED = 4096
MAX_ADDRS = 8


class AdvertError(ValueError):
    """An advert that is malformed, too large, badly signed or from the wrong peer."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Advert:
    """What one node says about itself."""

    peer_id: str
    http_url: str
    version: str
    capacity: int
    load: int
    sessions: tuple[dict[str, Any], ...]
    seq: int
    sent_at: float
    stake: str | None = None
    addrs: tuple[str, ...] = ()
    """Multiaddrs the node listens on: how another node dials it to bridge a session."""

    def body(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "v": ADVERT_VERSION,
            "peer_id": self.peer_id,
            "http_url": self.http_url,
            "version": self.version,
            "capacity": self.capacity,
            "load": self.load,
            "sessions": list(self.sessions),
            "seq": self.seq,
            "sent_at": self.sent_at,
            "stake": self.stake,
            "addrs": list(self.addrs),
        }


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def encode(advert: Advert, key: PrivateKey) -> bytes:
    """The wire form: the body, the serialized public key and a signature over the body."""
    body = advert.body()
    signature = key.sign(_canonical(body))
    envelope = {
        "body": body,
        "pubkey": key.get_public_key().serialize().hex(),
        "sig": signature.hex(),
    }
    data = _canonical(envelope)
    if len(data) > MAX_ADVERT_BYTES:
        raise AdvertError("too_large", f"advert is {len(data)} bytes (max {MAX_ADVERT_BYTES})")
    return data


def _session(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AdvertError("malformed", "a session entry must be an object")
    name, sid = value.get("name"), value.get("id")
    if not isinstance(sid, str) or not SESSION_ID_RE.match(sid):
        raise AdvertError("malformed", "a session needs an alphanumeric id")
    if not isinstance(name, str) or not 0 < len(name) <= SESSION_NAME_MAX or not name.isprintable():
        raise AdvertError("malformed", "a session needs a printable name")
    out: dict[str, Any] = {"id": sid, "name": name}
    for key, lo, hi in (("tempo_bpm", 20, 300), ("participants", 0, 1024)):
        number = value.get(key)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise AdvertError("malformed", f"session {key} must be a number")
        if not math.isfinite(number) or not lo <= number <= hi:
            raise AdvertError("malformed", f"session {key} out of range")
        out[key] = number
    for key in ("key", "time_signature"):
        text = value.get(key)
        if not isinstance(text, str) or len(text) > 16:
            raise AdvertError("malformed", f"session {key} must be a short string")
        out[key] = text
    return out


def decode(data: bytes, sender: str | None = None) -> Advert:
    """Check size, shape, signature and that the advert's peer id is its key's (and the
    gossip sender's, when given); raises ``AdvertError`` with a counted ``reason``."""
    if len(data) > MAX_ADVERT_BYTES:
        raise AdvertError("too_large", f"advert is {len(data)} bytes (max {MAX_ADVERT_BYTES})")
    try:
        envelope = json.loads(data)
        body = envelope["body"]
        pubkey = deserialize_public_key(bytes.fromhex(envelope["pubkey"]))
        signature = bytes.fromhex(envelope["sig"])
    except Exception as exc:  # JSON, hex and protobuf each fail in their own way
        raise AdvertError("malformed", f"not an advert ({type(exc).__name__})") from None
    if not isinstance(body, dict) or body.get("v") != ADVERT_VERSION:
        raise AdvertError("malformed", "unknown advert version")
    try:
        valid = pubkey.verify(_canonical(body), signature)
    except Exception:  # the key types raise their own errors on garbage
        valid = False
    if not valid:
        raise AdvertError("bad_signature", "the advert's signature does not verify")
    key_peer = ID.from_pubkey(pubkey).to_base58()
    if body.get("peer_id") != key_peer or (sender is not None and sender != key_peer):
        raise AdvertError("wrong_peer", "the advert speaks for a peer id that is not its key's")
    try:
        sessions = body["sessions"]
        if not isinstance(sessions, list) or len(sessions) > MAX_SESSIONS:
            raise AdvertError("malformed", f"sessions must be a list of at most {MAX_SESSIONS}")
        url, version = body["http_url"], body["version"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise AdvertError("malformed", "http_url must be an http(s) URL")
        if not isinstance(version, str) or len(version) > 32:
            raise AdvertError("malformed", "version must be a short string")
        numbers = [body[k] for k in ("capacity", "load", "seq")]
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in numbers):
            raise AdvertError("malformed", "capacity, load and seq must be counts")
        sent_at = body["sent_at"]
        if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
            raise AdvertError("malformed", "sent_at must be a time")
        stake = body.get("stake")
        if stake is not None and (not isinstance(stake, str) or len(stake) > 80):
            raise AdvertError("malformed", "stake must be a short string or null")
        addrs = body.get("addrs", [])
        if (
            not isinstance(addrs, list)
            or len(addrs) > MAX_ADDRS
            or not all(isinstance(a, str) and a.startswith("/") and len(a) <= 200 for a in addrs)
        ):
            raise AdvertError("malformed", f"addrs must be at most {MAX_ADDRS} multiaddrs")
        return Advert(
            key_peer, url, version, numbers[0], numbers[1],
            tuple(_session(s) for s in sessions), numbers[2], float(sent_at), stake,
            tuple(addrs),
        )  # fmt: skip
    except KeyError as exc:
        raise AdvertError("malformed", f"advert lacks {exc.args[0]!r}") from None


@dataclass
class Peer:
    """A node as this node sees it."""

    advert: Advert
    seen_at: float
    connected: bool = False


@dataclass
class NetworkView:
    """The newest advert from every live node; silent ones expire after ``ttl_s``."""

    self_id: str
    ttl_s: float = 6.0
    peers: dict[str, Peer] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    last_seq: dict[str, int] = field(default_factory=dict)
    """Highest seq per node, kept after it expires: gossip can re-deliver old adverts."""
    departed: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=32)
    )
    """The latest expiries: which node, and how long it had been silent when dropped (an
    upper bound of how long its death took to notice)."""

    def accept(self, data: bytes, sender: str | None, now: float | None = None) -> Advert | None:
        """Take an advert off the wire; a bad one is counted by reason and dropped."""
        now = time.time() if now is None else now
        try:
            advert = decode(data, sender)
        except AdvertError as exc:
            self.rejected[exc.reason] += 1
            return None
        if advert.peer_id == self.self_id:
            return None
        if abs(advert.sent_at - now) > CLOCK_SKEW_S:
            self.rejected["stale"] += 1
            return None
        known = self.peers.get(advert.peer_id)
        last = self.last_seq.get(advert.peer_id, -1)
        if advert.seq <= last:
            if advert.seq < last:
                self.rejected["replayed"] += 1
            return None
        if len(self.last_seq) >= MAX_REMEMBERED and advert.peer_id not in self.last_seq:
            self.last_seq.pop(next(iter(self.last_seq)))
        self.last_seq[advert.peer_id] = advert.seq
        connected = known.connected if known else False
        self.peers[advert.peer_id] = Peer(advert, now, connected)
        return advert

    def expire(self, now: float | None = None) -> list[str]:
        """Forget nodes not heard from for ``ttl_s``; returns their peer ids."""
        now = time.time() if now is None else now
        gone = [pid for pid, peer in self.peers.items() if now - peer.seen_at > self.ttl_s]
        for pid in gone:
            silent = now - self.peers.pop(pid).seen_at
            self.departed.append({"peer_id": pid, "silent_s": round(silent, 3), "at": now})
        return gone

    def directory(self) -> list[dict[str, Any]]:
        """Public sessions of every live node, each with the node that hosts it."""
        entries = []
        for peer in self.peers.values():
            for session in peer.advert.sessions:
                entries.append(
                    {**session, "node": peer.advert.http_url, "peer_id": peer.advert.peer_id}
                )
        return sorted(entries, key=lambda e: (e["name"], e["id"]))
