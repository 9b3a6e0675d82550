"""Listening is usage: plays, signed listen receipts, their limits and their append-only log.

A listener starts a play of a registered work (``start``): the node notes the listener's key,
the client's IP address and the time, and hands out a play id and the stream URL. After at
least ``MIN_PLAY_S`` (30 s, Spotify's rule) of playback the listener's key signs a receipt
(EIP-712 ``Listen``: work id, content hash, play id, milliseconds played) and sends it
(``receipt``). It counts only if:

- the signature is the key the play was started for, over this very play;
- at least 30 s of wall time passed since the play started on this node, and the receipt
  says at least 30 s were played (a play cannot count before it could have been heard);
- the key has no other counted play overlapping it: one key, one play at a time;
- the key is under ``PER_KEY_PER_MONTH`` (1,000) counted plays in the last 30 days (Deezer's
  cap of 1,000 streams per listener per month), whatever the royalty periods' length;
- the IP address is under ``PER_ADDRESS_PER_HOUR`` (120) counted plays in the last hour
  (Audius's limit for signed listens), and has brought at most ``KEYS_PER_ADDRESS`` (5)
  different keys in the last 30 days, so a farm of keys behind one address counts as one
  household.

A refused receipt is answered with the reason (HTTP 409 or 429) and stored nowhere. Counted
receipts go to an append-only SQLite table (triggers refuse UPDATE and DELETE), one
transaction each, committed before the reply: a killed node loses no receipt it
acknowledged. Plays in progress live in memory (at most ``MAX_OPEN_PLAYS``): a restart only
makes a listener start their play again.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data

from node.errors import AuthError, InputError, NotFoundError, RateLimitError, SessionError
from node.identity import parse_address
from node.store.db import open_sqlite

MIN_PLAY_S = 30.0
PER_KEY_PER_MONTH = 1000
MONTH_S = 30 * 24 * 3600.0
PER_ADDRESS_PER_HOUR = 120
KEYS_PER_ADDRESS = 5
MAX_OPEN_PLAYS = 10_000
PLAY_STARTS_PER_ADDRESS_PER_MINUTE = 30
PLAY_TTL_S = 6 * 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS listens (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    play_id TEXT NOT NULL UNIQUE,
    period_id INTEGER NOT NULL,
    work_id INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    listener TEXT NOT NULL,
    address TEXT NOT NULL,
    started_at REAL NOT NULL,
    counted_at REAL NOT NULL,
    played_ms INTEGER NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS listens_key ON listens (listener, period_id);
CREATE INDEX IF NOT EXISTS listens_address ON listens (address, counted_at);
CREATE INDEX IF NOT EXISTS listens_period ON listens (period_id);
CREATE TRIGGER IF NOT EXISTS listens_no_update BEFORE UPDATE ON listens
BEGIN SELECT RAISE(ABORT, 'listen receipts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS listens_no_delete BEFORE DELETE ON listens
BEGIN SELECT RAISE(ABORT, 'listen receipts are append-only'); END;
"""
LISTEN_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "Listen": [
        {"name": "workId", "type": "uint256"},
        {"name": "contentHash", "type": "bytes32"},
        {"name": "playId", "type": "bytes32"},
        {"name": "playedMs", "type": "uint32"},
    ],
}
PLAY_ID_RE = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass(frozen=True)
class Play:
    """A play in progress."""

    play_id: str
    work_id: int
    content_hash: str
    listener: str
    address: str
    started_at: float


def listen_typed_data(
    chain_id: int, work_id: int, content_hash: str, play_id: str, played_ms: int
) -> dict[str, Any]:
    """The receipt a listener's key signs, as EIP-712 JSON (for wallets and ethers.js)."""
    return {
        "types": LISTEN_TYPES,
        "primaryType": "Listen",
        "domain": {"name": "jamnet Listen", "version": "1", "chainId": chain_id},
        "message": {
            "workId": work_id,
            "contentHash": content_hash,
            "playId": play_id,
            "playedMs": played_ms,
        },
    }


def listen_message(
    chain_id: int, work_id: int, content_hash: str, play_id: str, played_ms: int
) -> SignableMessage:
    """The signable form of a listen receipt."""
    return encode_typed_data(
        full_message=listen_typed_data(chain_id, work_id, content_hash, play_id, played_ms)
    )


class ListenBook:
    """Plays in progress, the limits, and the append-only receipt log."""

    def __init__(self, path: Path, chain_id: int) -> None:
        self._db = open_sqlite(path, SCHEMA)
        self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged receipt is on disk
        self.chain_id = chain_id
        self._plays: OrderedDict[str, Play] = OrderedDict()
        self._starts: dict[str, list[float]] = {}

    def close(self) -> None:
        """Close the log (idempotent)."""
        self._db.close()

    def start(
        self, work_id: int, content_hash: str, listener: object, address: str, now: float
    ) -> dict[str, Any]:
        """A new play of a work for a listener's key from ``address``."""
        key = parse_address(listener, "listener")
        recent = [t for t in self._starts.get(address, []) if now - t < 60.0]
        if len(recent) >= PLAY_STARTS_PER_ADDRESS_PER_MINUTE:
            raise RateLimitError("too many plays started from this address: wait a minute")
        recent.append(now)
        self._starts[address] = recent
        if len(self._starts) > MAX_OPEN_PLAYS:
            self._starts.pop(next(iter(self._starts)))
        for stale in [p for p, play in self._plays.items() if now - play.started_at > PLAY_TTL_S]:
            del self._plays[stale]
        while len(self._plays) >= MAX_OPEN_PLAYS:
            self._plays.popitem(last=False)
        play = Play("0x" + secrets.token_hex(32), work_id, content_hash, key, address, now)
        self._plays[play.play_id] = play
        return {
            "play_id": play.play_id,
            "work_id": work_id,
            "listener": key,
            "started_at": now,
            "min_play_s": MIN_PLAY_S,
            "typed_data": listen_typed_data(
                self.chain_id, work_id, content_hash, play.play_id, int(MIN_PLAY_S * 1000)
            ),
        }

    def receipt(
        self,
        play_id: str,
        played_ms: object,
        signature: object,
        address: str,
        period_id: int,
        now: float,
    ) -> dict[str, Any]:
        """Check a signed receipt against the play and the limits; count it or say why not."""
        if not PLAY_ID_RE.match(play_id):
            raise InputError("a play id is 0x followed by 64 hex digits")
        if isinstance(played_ms, bool) or not isinstance(played_ms, int):
            raise InputError("played_ms must be a whole number of milliseconds")
        if not 0 <= played_ms < 2**32:
            raise InputError("played_ms is out of range")
        if not isinstance(signature, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", signature):
            raise InputError("signature must be 0x followed by 130 hex digits (65 bytes)")
        play = self._plays.get(play_id)
        if play is None:
            raise NotFoundError("no such play in progress (expired, or the node restarted)")
        message = listen_message(self.chain_id, play.work_id, play.content_hash, play_id, played_ms)
        try:
            signer = Account.recover_message(message, signature=signature)
        except Exception as exc:  # eth-account raises several types for malformed signatures
            raise AuthError(f"receipt signature does not verify: {exc}") from None
        if signer != play.listener:
            raise AuthError("the receipt was not signed by the key this play was started for")
        if played_ms < MIN_PLAY_S * 1000 or now - play.started_at < MIN_PLAY_S:
            raise SessionError(
                f"a play counts after {MIN_PLAY_S:g} s of playback"
                f" ({now - play.started_at:.1f} s since it started)"
            )
        self._check_limits(play, address, period_id, now)
        try:
            self._db.execute(
                "INSERT INTO listens (play_id, period_id, work_id, content_hash, listener,"
                " address, started_at, counted_at, played_ms, signature)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    play_id,
                    period_id,
                    play.work_id,
                    play.content_hash,
                    play.listener,
                    address,
                    play.started_at,
                    now,
                    played_ms,
                    signature,
                ),
            )
        except sqlite3.IntegrityError:
            raise SessionError("this play was counted already") from None
        self._plays.pop(play_id, None)
        return {"counted": True, "play_id": play_id, "work_id": play.work_id, "period": period_id}

    def _check_limits(self, play: Play, address: str, period_id: int, now: float) -> None:
        db = self._db
        overlapping = db.execute(
            "SELECT COUNT(*) FROM listens WHERE listener = ? AND counted_at > ?",
            (play.listener, play.started_at),
        ).fetchone()[0]
        if overlapping:
            raise RateLimitError("this key had another play counted while this one ran")
        per_key = db.execute(
            "SELECT COUNT(*) FROM listens WHERE listener = ? AND counted_at > ?",
            (play.listener, now - MONTH_S),
        ).fetchone()[0]
        if per_key >= PER_KEY_PER_MONTH:
            raise RateLimitError(
                f"this key has {PER_KEY_PER_MONTH} counted plays in the last 30 days,"
                " the most there are"
            )
        per_address = db.execute(
            "SELECT COUNT(*) FROM listens WHERE address = ? AND counted_at > ?",
            (address, now - 3600.0),
        ).fetchone()[0]
        if per_address >= PER_ADDRESS_PER_HOUR:
            raise RateLimitError(
                f"{PER_ADDRESS_PER_HOUR} plays counted from this address in the last hour"
            )
        keys = {
            r[0]
            for r in db.execute(
                "SELECT DISTINCT listener FROM listens WHERE address = ? AND counted_at > ?",
                (address, now - MONTH_S),
            )
        }
        if play.listener not in keys and len(keys) >= KEYS_PER_ADDRESS:
            raise RateLimitError(
                f"{KEYS_PER_ADDRESS} listener keys already count from this address (30 days)"
            )

    def period_receipts(self, period_id: int) -> list[dict[str, Any]]:
        """Every counted receipt of a period (for the roll-up), oldest first."""
        return [
            dict(r)
            for r in self._db.execute(
                "SELECT play_id, period_id, work_id, listener, address, counted_at, played_ms"
                " FROM listens WHERE period_id = ? ORDER BY seq",
                (period_id,),
            )
        ]

    def counts(self, period_id: int | None = None) -> dict[int, int]:
        """Counted plays per work (of one period, or of all)."""
        sql, args = "SELECT work_id, COUNT(*) FROM listens", tuple[int, ...]()
        if period_id is not None:
            sql, args = sql + " WHERE period_id = ?", (period_id,)
        return {int(w): int(n) for w, n in self._db.execute(sql + " GROUP BY work_id", args)}

    def export(self, period_id: int, path: Path) -> int:
        """Write a period's receipts as JSON lines (the Spark job's input); returns the count."""
        count = 0
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as out:
            for row in self._db.execute(
                "SELECT play_id, period_id, work_id, listener, address, counted_at"
                " FROM listens WHERE period_id = ? ORDER BY seq",
                (period_id,),
            ):
                out.write(json.dumps(dict(row)) + "\n")
                count += 1
        tmp.replace(path)
        return count
