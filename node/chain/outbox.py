"""A persisted transaction outbox: nothing queued is lost, nothing is paid twice.

Each transaction is queued under an idempotency key (queuing the same key again returns the
existing entry). Processing walks every unfinished entry:

1. ``queued``: give it the sender's next nonce, estimate gas, sign, and store the raw
   transaction and its hash — committed *before* anything is sent;
2. ``signed``: send exactly those bytes. A retry (the RPC was down, the node crashed between
   storing and sending) re-sends the same signed bytes: same nonce, same hash — the chain
   can include it at most once;
3. ``sent``: poll for the receipt → ``mined`` (status 1) or ``failed`` (reverted, with the
   decoded reason).

Entries go out in order, one at a time: a pass stops at the first entry that is not mined
yet, so a later transaction (a stake after its approval, claims after a settlement) is never
estimated or signed against a state the earlier one has not made. RPC errors leave an entry
where it was, count an attempt and try again on the next pass.
The store is the node's SQLite file (WAL, a transaction per change), so a node restart
resumes where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import ContractCustomError, TransactionNotFound, Web3Exception, Web3RPCError
from web3.types import TxParams, Wei

from node.chain.errors import decode_error
from node.errors import ChainError, InputError
from node.store.db import open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    target TEXT NOT NULL,
    data TEXT NOT NULL,
    value TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'signed', 'sent', 'mined', 'failed')),
    nonce INTEGER,
    raw_tx TEXT,
    tx_hash TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""
KEY_MAX = 200


@dataclass(frozen=True)
class Entry:
    """One queued transaction and where it stands."""

    key: str
    sender: str
    target: str
    data: str
    value: int
    state: str
    nonce: int | None
    tx_hash: str | None
    error: str | None
    attempts: int


class Outbox:
    """Queue and drive transactions signed by one local account."""

    def __init__(self, path: Path, account: LocalAccount) -> None:
        self._db = open_sqlite(path, SCHEMA)
        self.account = account
        self._processing = threading.Lock()
        """One pass at a time: two threads signing the same entry would burn a nonce."""

    def close(self) -> None:
        """Close the store (idempotent)."""
        self._db.close()

    # ------------------------------------------------------------- queueing
    def enqueue(self, key: str, target: str, data: str, value: int = 0) -> Entry:
        """Queue a call of ``target`` with calldata ``data``; the same key is queued once."""
        if not key or len(key) > KEY_MAX or not key.isprintable():
            raise InputError(f"outbox key must be 1-{KEY_MAX} printable characters")
        if not Web3.is_address(target):
            raise InputError(f"{target!r} is not an address")
        if not isinstance(data, str) or not data.startswith("0x"):
            raise InputError("calldata must be a 0x… hex string")
        if value < 0:
            raise InputError("value must not be negative")
        now = time.time()
        self._db.execute(
            "INSERT OR IGNORE INTO outbox (key, sender, target, data, value, state, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
            (
                key,
                self.account.address,
                Web3.to_checksum_address(target),
                data,
                str(value),
                now,
                now,
            ),
        )
        return self.get(key)

    def get(self, key: str) -> Entry:
        """An entry by key."""
        row = self._db.execute("SELECT * FROM outbox WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise InputError(f"no outbox entry {key!r}")
        return _entry(row)

    def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        return [
            _entry(r) for r in self._db.execute("SELECT * FROM outbox ORDER BY created_at, key")
        ]

    # ------------------------------------------------------------ processing
    def process(self, w3: Web3) -> int:
        """One pass over unfinished entries; returns how many are still unfinished."""
        with self._processing:
            return self._process(w3)

    def _process(self, w3: Web3) -> int:
        pending = self._db.execute(
            "SELECT * FROM outbox WHERE state IN ('queued', 'signed', 'sent') AND sender = ?"
            " ORDER BY created_at, key",
            (self.account.address,),
        ).fetchall()
        for row in pending:
            try:
                self._advance(w3, _entry(row))
            except ChainError as exc:
                self._update(row["key"], error=str(exc), attempts=row["attempts"] + 1)
            except (
                OSError,
                ValueError,
                TimeoutError,
                Web3Exception,
            ) as exc:  # RPC down or refusing
                self._update(row["key"], error=f"RPC: {exc}", attempts=row["attempts"] + 1)
            if self.get(row["key"]).state not in {"mined", "failed"}:
                break  # later entries wait for this one
        remaining = self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('queued', 'signed', 'sent')"
        ).fetchone()
        return int(remaining[0])

    def _advance(self, w3: Web3, entry: Entry) -> None:
        if entry.state == "queued":
            self._sign(w3, entry)
            entry = self.get(entry.key)
        if entry.state == "signed":
            raw = self._db.execute(
                "SELECT raw_tx FROM outbox WHERE key = ?", (entry.key,)
            ).fetchone()[0]
            try:
                w3.eth.send_raw_transaction(raw)
            except (ValueError, Web3RPCError) as exc:
                # Already known / nonce already used by this very transaction: it is out.
                if "already" not in str(exc).lower() and "nonce too low" not in str(exc).lower():
                    raise
            self._update(entry.key, state="sent")
            entry = self.get(entry.key)
        if entry.state == "sent" and entry.tx_hash is not None:
            try:
                receipt = w3.eth.get_transaction_receipt(entry.tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                self._resend_if_dropped(w3, entry)
                return
            if receipt["status"] == 1:
                self._update(entry.key, state="mined", error=None)
            else:
                self._update(entry.key, state="failed", error=self._reason(w3, entry))

    def _sign(self, w3: Web3, entry: Entry) -> None:
        sender = self.account.address
        chain_next = w3.eth.get_transaction_count(sender, "pending")
        row = self._db.execute(
            "SELECT MAX(nonce) FROM outbox WHERE sender = ? AND nonce IS NOT NULL", (sender,)
        ).fetchone()
        nonce = max(chain_next, (row[0] + 1) if row[0] is not None else 0)
        tx: dict[str, Any] = {
            "from": sender,
            "to": entry.target,
            "data": entry.data,
            "value": entry.value,
            "nonce": nonce,
            "chainId": w3.eth.chain_id,
        }
        try:
            tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2) + 10_000  # type: ignore[arg-type]
        except ContractCustomError as exc:
            self._update(entry.key, state="failed", error=decode_error(str(exc.data)))
            return
        base = w3.eth.get_block("latest").get("baseFeePerGas", 0)
        tip = w3.to_wei(1, "gwei")
        tx.update({"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * int(base) + tip})
        signed = self.account.sign_transaction(tx)
        self._update(
            entry.key,
            state="signed",
            nonce=nonce,
            raw_tx="0x" + bytes(signed.raw_transaction).hex(),
            tx_hash="0x" + bytes(signed.hash).hex(),
        )

    def _resend_if_dropped(self, w3: Web3, entry: Entry) -> None:
        """Not mined and not pending (a devnet restart forgets its mempool): send again."""
        try:
            w3.eth.get_transaction(entry.tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            self._update(entry.key, state="signed")

    def _reason(self, w3: Web3, entry: Entry) -> str:
        try:
            call: TxParams = {
                "from": Web3.to_checksum_address(entry.sender),
                "to": Web3.to_checksum_address(entry.target),
                "data": HexStr(entry.data),
                "value": Wei(entry.value),
            }
            w3.eth.call(call)
        except ContractCustomError as exc:
            return decode_error(str(exc.data))
        except Exception as exc:  # the reason is best effort
            return str(exc)
        return "reverted"

    def _update(self, key: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(f"UPDATE outbox SET {columns} WHERE key = ?", (*fields.values(), key))  # noqa: S608


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(
        key=row["key"],
        sender=row["sender"],
        target=row["target"],
        data=row["data"],
        value=int(row["value"]),
        state=row["state"],
        nonce=row["nonce"],
        tx_hash=row["tx_hash"],
        error=row["error"],
        attempts=row["attempts"],
    )


def describe(entry: Entry) -> str:
    """One line for logs and the CLI."""
    return json.dumps(
        {
            "key": entry.key,
            "state": entry.state,
            "nonce": entry.nonce,
            "tx": entry.tx_hash,
            "error": entry.error,
        }
    )
