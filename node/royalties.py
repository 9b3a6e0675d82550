"""Periods: listen receipts → a Spark roll-up → one settlement on chain → claims into splits.

Receipts count towards the open period. The operator closes it (``jamnet royalties close``,
or ``POST /api/royalties/close`` signed by the node's key holder); the node then, step by
step, each step saved before the next begins:

1. ``closed``: export the period's receipts, read what the pool holds unallocated, and run
   ``spark_jobs/royalties.py`` (pro-rata; ``local[*]``, or the configured master);
2. ``rolled``: the payouts are saved; their Merkle root is queued in the outbox as
   ``settle:<period>`` (RoyaltyPool.settle takes the sums of the leaves, so the period pays
   out exactly what it was given minus the stated dust, which stays in the pool);
3. ``settling``: once that is mined, one claim per work is queued (``claim:<period>:<work>``);
4. ``settled``: every claim is mined.

A node killed anywhere in this resumes at its start from the saved step. The outbox signs each
transaction once and re-sends the same bytes; the contract settles a period id once and pays
each (period, work) once: nothing is paid twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from node.chain.merkle import Payout, PayoutTree
from node.chain.service import ChainService
from node.errors import ChainError, SessionError
from node.listens import ListenBook
from node.store.db import open_sqlite

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS periods (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL
        CHECK (state IN ('open', 'closed', 'rolled', 'settling', 'settled', 'failed')),
    opened_at REAL NOT NULL,
    closed_at REAL,
    rollup TEXT,
    root TEXT,
    error TEXT,
    updated_at REAL NOT NULL
);
"""
ROOT = Path(__file__).resolve().parent.parent
ROLLUP_TIMEOUT_S = 1800


class Royalties:
    """The periods of this node's royalty pool and their settlement."""

    def __init__(
        self, directory: Path, chain: ChainService, listens: ListenBook, master: str = "local[*]"
    ) -> None:
        self.directory = directory
        self._db = open_sqlite(directory / "royalties.sqlite3", SCHEMA)
        self._db.execute("PRAGMA synchronous=FULL")
        self.chain = chain
        self.listens = listens
        self.master = master
        self._task: asyncio.Task[None] | None = None
        if self._db.execute("SELECT COUNT(*) FROM periods").fetchone()[0] == 0:
            self._db.execute(
                "INSERT INTO periods (id, state, opened_at, updated_at) VALUES (1, 'open', ?, ?)",
                (time.time(), time.time()),
            )

    def close(self) -> None:
        """Close the store (idempotent)."""
        self._db.close()

    @property
    def current(self) -> int:
        """The open period receipts count towards."""
        row = self._db.execute("SELECT MAX(id) FROM periods WHERE state = 'open'").fetchone()
        return int(row[0])

    def periods(self) -> list[dict[str, Any]]:
        """Every period, newest first, with its roll-up and state."""
        rows = self._db.execute("SELECT * FROM periods ORDER BY id DESC").fetchall()
        result = []
        for row in rows:
            item = dict(row)
            item["rollup"] = json.loads(item["rollup"]) if item["rollup"] else None
            item["receipts"] = (
                len(self.listens.period_receipts(item["id"])) if item["state"] == "open" else None
            )
            result.append(item)
        return result

    def period(self, period_id: int) -> dict[str, Any]:
        """One period."""
        for item in self.periods():
            if item["id"] == period_id:
                return item
        raise SessionError(f"no period {period_id}")

    def close_period(self) -> dict[str, Any]:
        """Close the open period (a new one opens at once) and start settling it."""
        now = time.time()
        period = self.current
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE periods SET state='closed', closed_at=?, updated_at=? WHERE id=?",
                (now, now, period),
            )
            self._db.execute(
                "INSERT INTO periods (id, state, opened_at, updated_at) VALUES (?, 'open', ?, ?)",
                (period + 1, now, now),
            )
            self._db.execute("COMMIT")
        except Exception:
            self._db.execute("ROLLBACK")
            raise
        log.info("royalty period %d closed; period %d open", period, period + 1)
        self.kick()
        return self.period(period)

    def kick(self) -> None:
        """Make sure the settlement worker runs (after a close, and at start)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work(), name="royalties")

    async def drain(self) -> None:
        """Wait for the worker to finish what it can now (tests, shutdown)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop the worker (its step is saved; the next start resumes it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # its step is saved
                await self._task
            self._task = None

    async def _work(self) -> None:
        """Advance every unfinished period, oldest first, until each is settled or waiting.
        Trouble (the chain down, the roll-up failing) is retried with a growing pause and
        logged once per kind, never fatal: the step is saved, the next try resumes it."""
        failures = 0
        last_error = ""
        while True:
            rows = self._db.execute(
                "SELECT * FROM periods WHERE state IN ('closed', 'rolled', 'settling')"
                " ORDER BY id LIMIT 1"
            ).fetchall()
            if not rows:
                return
            row = dict(rows[0])
            try:
                moved = await asyncio.to_thread(self._advance, row)
                failures = 0
            except Exception as exc:  # retried: every step is saved before the next one
                failures += 1
                if str(exc) != last_error:
                    log.warning("royalty period %d: %s (retrying)", row["id"], exc)
                    last_error = str(exc)
                self._set(row["id"], row["state"], error=f"retrying: {exc}"[:500])
                moved = False
            if not moved:
                await asyncio.sleep(min(60.0, 2.0 ** min(failures, 6)) if failures else 1.0)

    def _advance(self, row: dict[str, Any]) -> bool:
        period, state = int(row["id"]), row["state"]
        if state == "closed":
            self._roll(period)
            return True
        rollup = json.loads(row["rollup"])
        payouts = [
            Payout(int(p["work_id"]), int(p["eth"]), int(p["token"])) for p in rollup["payouts"]
        ]
        outbox, w3 = self.chain.outbox, self.chain.w3
        if outbox is None or w3 is None or self.chain.deployment is None:
            raise ChainError("the chain is not connected")
        pool = self.chain.deployment.contracts(w3)["RoyaltyPool"]
        if not payouts:
            self._set(period, "settled")
            return True
        tree = PayoutTree(period, payouts)
        if state == "rolled":
            call = pool.functions.settle(
                period,
                tree.root,
                sum(p.eth for p in payouts),
                sum(p.token for p in payouts),
                len(payouts),
            )
            outbox.enqueue(f"settle:{period}", pool.address, call._encode_transaction_data())
            self._set(period, "settling", root="0x" + tree.root.hex())
            state = "settling"
        outbox.process(w3)
        settle = outbox.get(f"settle:{period}")
        if settle.state == "failed":
            self._set(period, "failed", error=f"settlement failed: {settle.error}")
            return True
        if settle.state != "mined":
            return False
        for p in payouts:
            claim = pool.functions.claim(period, p.work_id, p.eth, p.token, tree.proof(p.work_id))
            outbox.enqueue(
                f"claim:{period}:{p.work_id}", pool.address, claim._encode_transaction_data()
            )
        outbox.process(w3)
        states = [outbox.get(f"claim:{period}:{p.work_id}").state for p in payouts]
        if all(s in {"mined", "failed"} for s in states):
            failed = states.count("failed")
            self._set(
                period,
                "settled",
                error=f"{failed} claims failed: anyone may claim them again" if failed else None,
            )
            log.info("royalty period %d settled: %d works paid", period, len(payouts) - failed)
            return True
        return False

    def _roll(self, period: int) -> None:
        w3, deployment = self.chain.w3, self.chain.deployment
        if w3 is None or deployment is None:
            raise ChainError("the chain is not connected")
        pool = deployment.contracts(w3)["RoyaltyPool"]
        eth, jam = pool.functions.unallocated().call()
        directory = self.directory / "periods"
        directory.mkdir(parents=True, exist_ok=True)
        receipts = directory / f"period-{period}.jsonl"
        out = directory / f"payouts-{period}.json"
        count = self.listens.export(period, receipts)
        log.info("royalty period %d: rolling up %d receipts on %s", period, count, self.master)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [
            sys.executable,
            "-m",
            "spark_jobs.royalties",
            "--receipts",
            str(receipts),
            "--period",
            str(period),
            "--eth",
            str(eth),
            "--jam",
            str(jam),
            "--out",
            str(out),
            "--master",
            self.master,
        ]
        done = subprocess.run(  # noqa: S603 - our own interpreter and job
            command, env=env, capture_output=True, text=True, timeout=ROLLUP_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise ChainError(f"the roll-up failed: {done.stderr.strip()[-500:]}")
        rollup = json.loads(out.read_text())
        self._set(period, "rolled", rollup=json.dumps(rollup))

    def _set(self, period: int, state: str, **fields: Any) -> None:
        fields.setdefault("error", None)  # a step that succeeds clears the last retry's error
        fields["state"] = state
        fields["updated_at"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE periods SET {columns} WHERE id = ?",  # noqa: S608 - our column names
            (*fields.values(), period),
        )
