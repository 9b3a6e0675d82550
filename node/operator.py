"""The node's side of NodeRewards: report each period, countersign peers, dispute them.

Every ``chain.rewards_check_s`` the agent:

1. **Reports** each ended period it served in (``node.served`` metered it), once, inside the
   report window. The figures are fixed first and saved (a countersignature covers them, so a
   retry must send the same ones). For each peer node it shared sessions with, it asks over
   libp2p (the bridge protocol, request ``served``) for a countersignature of those minutes; a
   peer that refuses or cannot be reached is asked again on later passes for
   ``COSIGN_PATIENCE`` of the window, then its minutes are left out (not moved to "solo": the
   peer would dispute that). The report goes through the outbox (``rewards:report:<period>``),
   so a restart sends the same signed transaction, never a second one.
2. **Countersigns** a peer's request (``answer``) only if the asking libp2p peer is the
   registered node the request names and it claims no more than this node saw of that peer's
   own musicians (``node.chain.rewards.countersign``).
3. **Disputes** a peer's report that carries no countersignature of this node although this
   node saw at least ``DISPUTE_MIN_MINUTES`` of that peer's musicians in the period: those
   minutes were left out or moved into its unverifiable "solo" minutes. Governance decides.

Everything it did or refused is in ``status()`` (``GET /api/operator``) and in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from web3 import Web3

from node.chain.rewards import MINUTES_TOLERANCE, Served, countersign
from node.chain.service import ChainService
from node.errors import InputError, JamnetError
from node.served import Schedule, ServedMeter, SharedView
from node.store.db import open_sqlite

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS reward_reports (
    period INTEGER PRIMARY KEY,
    state TEXT NOT NULL
        CHECK (state IN ('collecting', 'queued', 'reported', 'failed', 'skipped')),
    figures TEXT NOT NULL,
    cosigns TEXT NOT NULL,
    pending TEXT NOT NULL,
    started_at REAL NOT NULL,
    note TEXT,
    updated_at REAL NOT NULL
);
"""
COSIGN_PATIENCE = 0.5
"""Share of the report window spent asking unreachable or refusing peers again."""
DISPUTE_MIN_MINUTES = 1.0
"""Below a whole minute seen, a peer had nothing it could claim as shared."""
DISPUTE_REASON = Web3.keccak(text="no countersignature for shared minutes")
REGISTRY_TTL_S = 30.0
ASKS_PER_MINUTE = 20
"""Countersign requests answered per asking peer a minute (a node asks once per period)."""

Ask = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""Sends one request to a peer node (by peer id) and returns its answer."""


class OperatorRewards:
    """Meters, reports, countersigns and disputes NodeRewards periods for this node."""

    def __init__(
        self,
        data: Path,
        chain: ChainService,
        jam: Any,
        clocks: Any,
        shared: Callable[[], SharedView | None],
        ask: Ask | None,
        check_every_s: float,
    ) -> None:
        self.data = data
        self.chain = chain
        self.jam = jam
        self.clocks = clocks
        self._shared = shared
        self.ask = ask
        self.check_every_s = check_every_s
        self._db = open_sqlite(data / "rewards.sqlite3", SCHEMA)
        self.meter: ServedMeter | None = None
        self.schedule: Schedule | None = None
        self._registry: dict[str, tuple[float, str | None]] = {}
        """Peer id → (when looked up, its registered operator or None)."""
        self._block_time = 0.0
        """The latest block's timestamp at this pass: the contract's clock, not ours."""
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""
        self.answered: dict[str, int] = {"countersigned": 0, "refused": 0}
        self._asks: dict[str, list[float]] = {}

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="operator-rewards")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.meter is not None:
            await self.meter.stop()

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()
        self._db.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
                self.last_error = ""
            except Exception as exc:  # the chain may be down a while: retried next pass
                if str(exc) != self.last_error:
                    log.warning("operator rewards: %s (retrying)", exc)
                self.last_error = str(exc)
            await asyncio.sleep(self.check_every_s)

    # ----------------------------------------------------------- one pass
    async def check(self) -> None:
        """One pass: start the meter once the schedule is known, then report and dispute."""
        if self.meter is None:
            self.schedule = await asyncio.to_thread(self._read_schedule)
            self.meter = ServedMeter(
                self.data / "served.sqlite3", self.jam, self.clocks, self.schedule, self._shared
            )
            self.meter.start()
        meter = self.meter
        latest = await asyncio.to_thread(self._latest_block_time)
        self._block_time = latest
        meter.chain_offset_s = max(0.0, latest - time.time())
        current = meter.current_period()
        for period in meter.periods():
            if period < current:
                await self._report(period)
                await self._dispute(period)

    def _contract(self, name: str) -> Any:
        w3, deployment = self.chain.w3, self.chain.deployment
        if w3 is None or deployment is None:
            raise JamnetError("the chain is not connected")
        if name not in deployment.addresses:
            raise JamnetError(f"this deployment has no {name} contract")
        return deployment.contracts(w3)[name]

    def _read_schedule(self) -> Schedule:
        _, _, _, period_s, genesis = self._contract("NodeRewards").functions.parameters().call()
        return Schedule(genesis=int(genesis), period_s=int(period_s))

    def _latest_block_time(self) -> float:
        assert self.chain.w3 is not None
        return float(self.chain.w3.eth.get_block("latest")["timestamp"])

    @property
    def address(self) -> str:
        if self.chain.account is None:
            raise JamnetError("the node has no chain key")
        return str(self.chain.account.address)

    def _node_of(self, peer_id: str) -> str | None:
        """The registered operator of a libp2p peer id, or None (cached briefly)."""
        at, node = self._registry.get(peer_id, (0.0, None))
        if time.monotonic() - at < REGISTRY_TTL_S:
            return node
        owner = self._contract("NodeRegistry").functions.operatorOf(peer_id).call()
        node = None if int(owner, 16) == 0 else Web3.to_checksum_address(owner)
        if len(self._registry) > 1000:
            self._registry.clear()
        self._registry[peer_id] = (time.monotonic(), node)
        return node

    # -------------------------------------------------------------- reports
    def _row(self, period: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT * FROM reward_reports WHERE period = ?", (period,)
        ).fetchone()
        return dict(row) if row is not None else None

    def _save(self, period: int, state: str, **fields: Any) -> None:
        fields.update(state=state, updated_at=time.time())
        for name in ("figures", "cosigns", "pending"):
            if name in fields and not isinstance(fields[name], str):
                fields[name] = json.dumps(fields[name])
        if self._row(period) is None:
            fields.setdefault("figures", "{}")
            fields.setdefault("cosigns", "[]")
            fields.setdefault("pending", "{}")
            fields.setdefault("started_at", time.time())
            columns = ", ".join(["period", *fields])
            marks = ", ".join("?" * (len(fields) + 1))
            self._db.execute(
                f"INSERT INTO reward_reports ({columns}) VALUES ({marks})",  # noqa: S608
                (period, *fields.values()),
            )
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE reward_reports SET {assignments} WHERE period = ?",  # noqa: S608
            (*fields.values(), period),
        )

    async def _report(self, period: int) -> None:
        assert self.meter is not None
        row = self._row(period)
        if row is not None and row["state"] in {"reported", "failed", "skipped"}:
            return
        rewards = self._contract("NodeRewards")
        ends, report_end, _ = await asyncio.to_thread(rewards.functions.periodTimes(period).call)
        now = self.meter.chain_time()
        if self._block_time < ends:
            return  # our clock says it ended, the chain's not yet: a report now would revert
        if row is None:
            if now >= report_end:
                self._save(period, "skipped", note="its report window had passed")
                return
            nodes = self._contract("NodeRegistry").functions
            if not await asyncio.to_thread(nodes.isRegistered(self.address).call):
                # Asked again next pass: registering within the report window still counts.
                raise JamnetError(
                    f"period {period} is not reported: this node ({self.address}) is not a"
                    " registered node; stake and register it (jamnet operator stake/register)"
                )
            self.meter.freeze(period)
            self.meter.flush()
            tally = self.meter.tally(period)
            pending = {p: int(s // 60) for p, s in tally.shared_s.items() if s >= 60}
            figures = tally.served()
            if figures.solo_minutes + sum(pending.values()) == 0:
                self._save(period, "skipped", note="under a minute served")
                return
            self._save(period, "collecting", figures=asdict(figures), pending=pending)
            log.info(
                "rewards period %d: %d solo minutes, %s shared; asking for countersignatures",
                period, figures.solo_minutes, pending or "none",
            )  # fmt: skip
            row = self._row(period)
            assert row is not None
        if row["state"] == "collecting":
            await self._collect(period, row, patience_over=now >= ends + COSIGN_PATIENCE * (
                report_end - ends))  # fmt: skip
            row = self._row(period)
            assert row is not None
        if row["state"] == "queued":
            await self._send(period)

    async def _collect(self, period: int, row: dict[str, Any], patience_over: bool) -> None:
        figures = Served(**json.loads(row["figures"]))
        cosigns: list[dict[str, Any]] = json.loads(row["cosigns"])
        pending: dict[str, int] = json.loads(row["pending"])
        notes = []
        for peer_id, minutes in list(pending.items()):
            node = await asyncio.to_thread(self._node_of, peer_id)
            if node is None:
                notes.append(f"{peer_id} is not a registered node")
                del pending[peer_id]
                continue
            try:
                signature = await self._ask_cosign(peer_id, node, period, minutes, figures)
            except JamnetError as exc:
                notes.append(f"{peer_id}: {exc}")
                if "not countersigned" in str(exc):
                    del pending[peer_id]  # refused for good: asking again will not change it
                continue
            cosigns.append({"node": node, "minutes": minutes, "signature": signature})
            del pending[peer_id]
        if pending and not patience_over:
            self._save(period, "collecting", cosigns=cosigns, pending=pending,
                       note="; ".join(notes) or None)  # fmt: skip
            return
        shared = sum(c["minutes"] for c in cosigns)
        figures = Served(**{**asdict(figures), "shared_minutes": shared})
        left_out = "; ".join(notes)
        self._save(period, "queued", figures=asdict(figures), cosigns=cosigns, pending={},
                   note=f"left out: {left_out}" if left_out else None)  # fmt: skip
        self._enqueue_report(period, figures, cosigns)
        log.info(
            "rewards period %d: reporting %d solo + %d countersigned minutes%s",
            period, figures.solo_minutes, shared, f" ({left_out})" if left_out else "",
        )  # fmt: skip

    async def _ask_cosign(
        self, peer_id: str, node: str, period: int, minutes: int, figures: Served
    ) -> str:
        if self.ask is None:
            raise JamnetError("p2p is off: peers cannot be asked")
        request = {
            "type": "served",
            "period": period,
            "reporter": self.address,
            "minutes": minutes,
            "concealed_bps": figures.concealed_bps,
            "added_ms": figures.added_ms,
            "overrun_bps": figures.overrun_bps,
        }
        try:
            answer = await self.ask(peer_id, request)
        except JamnetError:
            raise
        except Exception as exc:
            raise JamnetError(f"unreachable ({exc})") from None
        if not isinstance(answer, dict) or not answer.get("ok"):
            reason = answer.get("error") if isinstance(answer, dict) else "no answer"
            raise JamnetError(str(reason)[:300])
        signature = answer.get("signature")
        if not isinstance(signature, str) or not signature.startswith("0x"):
            raise JamnetError("the answer carries no signature")
        if answer.get("node") != node:
            raise JamnetError(f"the answer comes from {answer.get('node')}, not {node}")
        return signature

    def _enqueue_report(self, period: int, figures: Served, cosigns: list[dict[str, Any]]) -> None:
        """Queue the report (idempotent: the outbox queues a key once)."""
        rewards = self._contract("NodeRewards")
        call = rewards.functions.report(
            period,
            figures.as_tuple(),
            [(c["node"], c["minutes"], bytes.fromhex(c["signature"][2:])) for c in cosigns],
        )
        assert self.chain.outbox is not None
        self.chain.outbox.enqueue(
            f"rewards:report:{period}", rewards.address, call._encode_transaction_data()
        )

    async def _send(self, period: int) -> None:
        outbox, w3 = self.chain.outbox, self.chain.w3
        assert outbox is not None and w3 is not None  # noqa: PT018
        row = self._row(period)
        assert row is not None
        # Queued again from the saved figures: a crash between saving "queued" and queuing
        # the transaction must not leave the report stuck (the same key is queued once).
        self._enqueue_report(
            period, Served(**json.loads(row["figures"])), json.loads(row["cosigns"])
        )
        await asyncio.to_thread(outbox.process, w3)
        entry = outbox.get(f"rewards:report:{period}")
        if entry.state == "mined":
            self._save(period, "reported")
            log.info("rewards period %d: report mined (%s)", period, entry.tx_hash)
        elif entry.state == "failed":
            self._save(period, "failed", note=f"the report failed: {entry.error}")
            log.warning("rewards period %d: the report failed: %s", period, entry.error)

    # ------------------------------------------------------- countersigning
    async def answer(self, peer_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """A peer asks this node to countersign the minutes they shared (bridge request)."""
        try:
            now = time.monotonic()
            recent = [t for t in self._asks.get(peer_id, []) if now - t < 60.0]
            if len(recent) >= ASKS_PER_MINUTE:
                raise InputError(f"at most {ASKS_PER_MINUTE} countersign requests a minute")
            self._asks[peer_id] = [*recent, now]
            if len(self._asks) > 1000:  # forget the quietest askers
                self._asks = dict(sorted(self._asks.items(), key=lambda kv: kv[1][-1])[-500:])
            if self.meter is None or self.schedule is None:
                raise InputError("this node is not metering yet")
            period = _whole(request.get("period"), "period", 0, 2**63)
            minutes = _whole(request.get("minutes"), "minutes", 1, 10**9)
            figures = Served(
                solo_minutes=0,
                shared_minutes=minutes,
                concealed_bps=_whole(request.get("concealed_bps"), "concealed_bps", 0, 10_000),
                added_ms=_whole(request.get("added_ms"), "added_ms", 0, 65_535),
                overrun_bps=_whole(request.get("overrun_bps"), "overrun_bps", 0, 10_000),
            )
            reporter = request.get("reporter")
            if not isinstance(reporter, str) or not Web3.is_address(reporter):
                raise InputError("reporter must be an address")
            reporter = Web3.to_checksum_address(reporter)
            if period >= self.meter.current_period():
                raise InputError(f"period {period} has not ended")
            if await asyncio.to_thread(self._node_of, peer_id) != reporter:
                raise InputError(f"peer {peer_id} is not the registered node {reporter}")
            measured = self.meter.tally(period).seen_s.get(peer_id, 0.0) / 60.0
            rewards = self._contract("NodeRewards")
            assert self.chain.account is not None and self.chain.deployment is not None  # noqa: PT018
            signature = countersign(
                self.chain.account,
                self.chain.deployment.chain_id,
                rewards.address,
                period,
                reporter,
                minutes,
                measured,
                figures,
            )
        except JamnetError as exc:
            self.answered["refused"] += 1
            log.info("rewards: refused to countersign for %s: %s", peer_id, exc)
            return {"ok": False, "error": str(exc)}
        self.answered["countersigned"] += 1
        log.info("rewards: countersigned %d minutes of period %d for %s", minutes, period, reporter)
        return {"ok": True, "node": self.address, "signature": "0x" + signature.hex()}

    # ------------------------------------------------------------- disputes
    async def _dispute(self, period: int) -> None:
        assert self.meter is not None
        seen = {
            peer: s / 60.0
            for peer, s in self.meter.tally(period).seen_s.items()
            if s / 60.0 >= DISPUTE_MIN_MINUTES
        }
        if not seen:
            return
        rewards = self._contract("NodeRewards")
        _, _, dispute_end = await asyncio.to_thread(rewards.functions.periodTimes(period).call)
        if self.meter.chain_time() >= dispute_end:
            return
        outbox = self.chain.outbox
        assert outbox is not None
        for peer_id, minutes in seen.items():
            node = await asyncio.to_thread(self._node_of, peer_id)
            key = f"rewards:dispute:{period}:{node}"
            if node is None or node == self.address or _known(outbox, key):
                continue
            reported, signed = await asyncio.to_thread(self._report_of, period, node)
            if not reported or signed:
                continue
            call = rewards.functions.dispute(period, node, DISPUTE_REASON)
            outbox.enqueue(key, rewards.address, call._encode_transaction_data())
            log.warning(
                "rewards period %d: %s reported without this node's countersignature although"
                " it saw %.1f minutes of its musicians; disputed",
                period, node, minutes,
            )  # fmt: skip
        assert self.chain.w3 is not None
        await asyncio.to_thread(outbox.process, self.chain.w3)

    def _report_of(self, period: int, node: str) -> tuple[bool, bool]:
        """Whether ``node`` reported ``period``, and whether it carries our countersignature."""
        rewards = self._contract("NodeRewards")
        assert self.chain.deployment is not None
        start = self.chain.deployment.block
        reported = rewards.events.Reported().get_logs(
            from_block=start, argument_filters={"periodId": period, "node": node}
        )
        if not reported:
            return False, False
        signed = rewards.events.Countersigned().get_logs(
            from_block=start,
            argument_filters={"periodId": period, "node": node, "by": self.address},
        )
        return True, bool(signed)

    # ---------------------------------------------------------------- views
    def status(self) -> dict[str, Any]:
        """This node's metering and reports (``GET /api/operator``)."""
        meter = self.meter
        periods = []
        if meter is not None:
            for period in reversed(meter.periods()):
                row = self._row(period)
                periods.append(
                    {
                        "period": period,
                        "metered": meter.tally(period).public(),
                        "report": None
                        if row is None
                        else {
                            "state": row["state"],
                            "figures": json.loads(row["figures"]),
                            "countersigned_by": [
                                {"node": c["node"], "minutes": c["minutes"]}
                                for c in json.loads(row["cosigns"])
                            ],
                            "waiting_for": json.loads(row["pending"]),
                            "note": row["note"],
                        },
                    }
                )
        return {
            "metering": meter is not None,
            "current_period": meter.current_period() if meter is not None else None,
            "period_s": self.schedule.period_s if self.schedule else None,
            "countersign_tolerance": MINUTES_TOLERANCE,
            "answered": dict(self.answered),
            "error": self.last_error or None,
            "periods": periods[:30],
        }


def _known(outbox: Any, key: str) -> bool:
    try:
        outbox.get(key)
    except JamnetError:
        return False
    return True


def _whole(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be a whole number in [{low}, {high}]")
    return value
