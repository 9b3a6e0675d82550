"""The event indexer: every event of jamnet's contracts, in SQLite, for the API and CLI.

One ``eth_getLogs`` per pass covers all five contracts (address filter) in block ranges of
at most ``BATCH_BLOCKS``; each log is decoded by (contract, topic) with the contract's ABI
and stored once (primary key: transaction hash and log index), then the cursor advances, in
one database transaction. A restart resumes at the cursor. External chains are indexed
``confirmations`` blocks behind the head, so a shallow reorganisation cannot leave stale
events. The index belongs to one deployment: a different deployment (a devnet that was
reset) starts a fresh index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from node.chain.deploy import Deployment
from node.store.db import open_sqlite

BATCH_BLOCKS = 2000
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    tx_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    block INTEGER NOT NULL,
    contract TEXT NOT NULL,
    name TEXT NOT NULL,
    args TEXT NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX IF NOT EXISTS events_by_name ON events (contract, name, block);
"""


def _abi_type(item: Any) -> str:
    if str(item["type"]).startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item.get("components", []))
        return f"({inner}){str(item['type'])[5:]}"
    return str(item["type"])


def _plain(value: Any) -> Any:
    """Event arguments → JSON-safe values (bytes as 0x hex, big ints as strings)."""
    if isinstance(value, bytes | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) >= 2**53 else value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Indexer:
    """Follows the chain; ``poll()`` indexes what is new."""

    def __init__(
        self,
        path: Path,
        w3: Web3,
        deployment: Deployment,
        contracts: dict[str, Contract],
        confirmations: int = 0,
    ) -> None:
        self._db = open_sqlite(path, SCHEMA)
        self.w3 = w3
        self.deployment = deployment
        self.confirmations = confirmations
        self._by_topic: dict[tuple[str, bytes], tuple[str, Any]] = {}
        for name, contract in contracts.items():
            abi: list[dict[str, Any]] = [dict(entry) for entry in contract.abi]
            for item in abi:
                if item.get("type") != "event" or item.get("anonymous"):
                    continue
                types = ",".join(_abi_type(i) for i in item.get("inputs", []))
                topic = bytes(Web3.keccak(text=f"{item['name']}({types})"))
                event = getattr(contract.events, item["name"])()
                self._by_topic[(contract.address.lower(), topic)] = (name, event)
        identity = f"{deployment.chain_id}:{deployment.addresses['JamToken']}"
        if self._meta("deployment") != identity:  # another deployment: start afresh
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM events")
            self._db.execute("DELETE FROM meta")
            self._set("deployment", identity)
            self._set("cursor", str(deployment.block - 1))
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the index (idempotent)."""
        self._db.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def cursor(self) -> int:
        """The last block indexed."""
        return int(self._meta("cursor") or self.deployment.block - 1)

    def poll(self) -> int:
        """Index up to the (confirmed) head; returns how many events were new."""
        head = self.w3.eth.block_number - self.confirmations
        added = 0
        while self.cursor < head:
            start = self.cursor + 1
            stop = min(head, start + BATCH_BLOCKS - 1)
            logs = self.w3.eth.get_logs(
                {
                    "address": [
                        Web3.to_checksum_address(a) for a in self.deployment.addresses.values()
                    ],
                    "fromBlock": start,
                    "toBlock": stop,
                }
            )
            rows = []
            for log in logs:
                if not log["topics"]:
                    continue
                known = self._by_topic.get((str(log["address"]).lower(), bytes(log["topics"][0])))
                if known is None:
                    continue
                contract, event = known
                decoded = event.process_log(log)
                rows.append(
                    (
                        "0x" + bytes(log["transactionHash"]).hex(),
                        int(log["logIndex"]),
                        int(log["blockNumber"]),
                        contract,
                        decoded["event"],
                        json.dumps(_plain(dict(decoded["args"]))),
                    )
                )
            self._db.execute("BEGIN")
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
            added += self._db.total_changes - before
            self._set("cursor", str(stop))
            self._db.execute("COMMIT")
        return added

    def events(
        self, contract: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Indexed events, newest first."""
        sql = "SELECT * FROM events WHERE 1 = 1"
        args: list[Any] = []
        if contract:
            sql += " AND contract = ?"
            args.append(contract)
        if name:
            sql += " AND name = ?"
            args.append(name)
        sql += " ORDER BY block DESC, log_index DESC LIMIT ?"
        args.append(max(1, min(limit, 1000)))
        return [
            {
                "block": r["block"],
                "tx_hash": r["tx_hash"],
                "log_index": r["log_index"],
                "contract": r["contract"],
                "name": r["name"],
                "args": json.loads(r["args"]),
            }
            for r in self._db.execute(sql, args)
        ]
