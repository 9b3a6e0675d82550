"""What this node served, per NodeRewards period: musician-minutes and their quality.

Once a second the meter looks at every session this node runs and counts, for each musician
it serves (a human connected here, not over a bridge, whose packets arrived in the last
``LIVE_WITHIN_S``), the seconds since the last look:

- as *shared* with a peer node when the session is bridged to it (the first open link by
  peer id: one peer countersigns each musician-second, so nothing is counted twice);
- as *solo* otherwise.

It also counts what it *saw* of each peer: the seconds of that peer's own musicians (joined
over its link and not relayed from a third node) in this node's sessions. That is the figure
this node countersigns a peer's shared minutes against (``node.chain.rewards.countersign``).

Quality, over the same seconds: frames concealed out of frames played by the jitter buffers
of the streams this node mixes, mix-clock ticks that overran or were skipped, and the median
node-added latency (from the clock's per-packet samples, in 1 ms bins).

Periods follow the contract: ``(chain time − genesis) // period seconds``, where chain time
is the later of the wall clock and the latest block (a devnet's clock can be moved on). The
tallies are saved every ``FLUSH_S`` and on stop, so a restart or a crash loses at most that
much of the meter; a period's figures are frozen once it is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from node.chain.rewards import Served
from node.store.db import open_sqlite

log = logging.getLogger(__name__)

SAMPLE_S = 1.0
FLUSH_S = 10.0
MAX_STEP_S = 5.0
"""A look that comes later than this (a stalled loop, a suspended VM) counts this much."""
LIVE_WITHIN_S = 2.0
LATENCY_BINS = 500
"""1 ms bins of node-added latency; the last holds everything slower."""
KEEP_PERIODS = 60
"""Periods kept in the store (older ones are long reported and claimed)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS served (
    period INTEGER PRIMARY KEY,
    tally TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""


class SharedView(Protocol):
    """What the federation tells the meter (``FederationService``)."""

    def shared_with(self, session_id: str) -> list[str]:
        """Peer ids of the open links of a session, sorted."""
        ...

    def seen(self) -> Iterable[tuple[str, str, list[Any]]]:
        """(peer id, session id, that peer's own musicians here) for every open link."""
        ...


@dataclass
class Tally:
    """One period's counts (saved as JSON)."""

    solo_s: float = 0.0
    shared_s: dict[str, float] = field(default_factory=dict)
    """Peer id → musician-seconds of ours it shared."""
    seen_s: dict[str, float] = field(default_factory=dict)
    """Peer id → musician-seconds of its own musicians we mixed."""
    frames: int = 0
    concealed: int = 0
    ticks: int = 0
    overruns: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BINS)

    def to_json(self) -> str:
        return json.dumps(
            {
                "solo_s": self.solo_s,
                "shared_s": dict(self.shared_s),
                "seen_s": dict(self.seen_s),
                "frames": self.frames,
                "concealed": self.concealed,
                "ticks": self.ticks,
                "overruns": self.overruns,
                "latency": {str(i): n for i, n in enumerate(self.latency) if n},
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Tally:
        raw = json.loads(text)
        latency = [0] * LATENCY_BINS
        for index, count in raw.get("latency", {}).items():
            latency[min(int(index), LATENCY_BINS - 1)] += int(count)
        return cls(
            solo_s=float(raw.get("solo_s", 0.0)),
            shared_s={k: float(v) for k, v in raw.get("shared_s", {}).items()},
            seen_s={k: float(v) for k, v in raw.get("seen_s", {}).items()},
            frames=int(raw.get("frames", 0)),
            concealed=int(raw.get("concealed", 0)),
            ticks=int(raw.get("ticks", 0)),
            overruns=int(raw.get("overruns", 0)),
            latency=latency,
        )

    def median_added_ms(self) -> int:
        """The median node-added latency, in whole ms (0 with no samples)."""
        total = sum(self.latency)
        if total == 0:
            return 0
        half, running = (total + 1) // 2, 0
        for index, count in enumerate(self.latency):
            running += count
            if running >= half:
                return index
        return LATENCY_BINS - 1

    def served(self, shared_minutes: int = 0) -> Served:
        """The period's report figures, with ``shared_minutes`` countersigned."""
        frames = self.frames + self.concealed
        ticks = self.ticks
        return Served(
            solo_minutes=int(self.solo_s // 60),
            shared_minutes=shared_minutes,
            concealed_bps=min(10_000, round(10_000 * self.concealed / frames)) if frames else 0,
            added_ms=min(65_535, self.median_added_ms()),
            overrun_bps=min(10_000, round(10_000 * self.overruns / ticks)) if ticks else 0,
        )

    def public(self) -> dict[str, Any]:
        """What the API shows about a period's metering."""
        served = self.served()
        return {
            "solo_minutes": round(self.solo_s / 60, 2),
            "shared_minutes": {peer: round(s / 60, 2) for peer, s in self.shared_s.items()},
            "seen_minutes": {peer: round(s / 60, 2) for peer, s in self.seen_s.items()},
            "concealed_bps": served.concealed_bps,
            "added_ms": served.added_ms,
            "overrun_bps": served.overrun_bps,
        }


@dataclass(frozen=True)
class Schedule:
    """NodeRewards' periods (from ``parameters()``)."""

    genesis: int
    period_s: int

    def period_at(self, chain_time: float) -> int:
        return max(0, int((chain_time - self.genesis) // self.period_s))


class ServedMeter:
    """Counts what this node serves, per period, and keeps it."""

    def __init__(
        self,
        path: Path,
        jam: Any,
        clocks: Any,
        schedule: Schedule,
        shared: Callable[[], SharedView | None],
    ) -> None:
        self._db = open_sqlite(path, SCHEMA)
        self.jam = jam
        self.clocks = clocks
        self.schedule = schedule
        self._shared = shared
        self.chain_offset_s = 0.0
        """How far the chain's clock runs ahead of the wall clock (a devnet moved on)."""
        self._tallies: dict[int, Tally] = {
            int(row["period"]): Tally.from_json(row["tally"])
            for row in self._db.execute("SELECT period, tally FROM served").fetchall()
        }
        self._frozen: set[int] = set()
        self._last_seen: dict[int, tuple[int, int]] = {}
        """id(jitter stats) → (played, concealed) at the last look."""
        self._last_clock: tuple[int, int, int] | None = None
        self._last_look = time.monotonic()
        self._last_flush = self._last_look
        self._bins: list[int] | None = None
        """The current period's latency bins while it has a tally (the observer's fast path)."""
        self._task: asyncio.Task[None] | None = None
        clocks.latency_observers.append(self._observe_latency)

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._task is None:
            self._last_look = time.monotonic()
            self._task = asyncio.create_task(self._loop(), name="served-meter")

    async def stop(self) -> None:
        """Stop looking and save (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._bins = None
        with contextlib.suppress(ValueError):
            self.clocks.latency_observers.remove(self._observe_latency)
        self.flush()

    def close(self) -> None:
        self._db.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            try:
                self.look()
                if time.monotonic() - self._last_flush >= FLUSH_S:
                    self.flush()  # a few small WAL writes, on the loop: no tally moves under it
            except Exception:  # the meter must never take a session down
                log.exception("metering what this node served failed")

    # ------------------------------------------------------------ measuring
    def chain_time(self) -> float:
        return time.time() + self.chain_offset_s

    def current_period(self) -> int:
        return self.schedule.period_at(self.chain_time())

    def _observe_latency(self, seconds: float) -> None:
        # Runs on the loop (MixClock._deliver), once per mixed packet: keep it cheap.
        bins = self._bins
        if bins is not None:
            bins[min(LATENCY_BINS - 1, max(0, int(seconds * 1000.0)))] += 1

    def look(self, now: float | None = None) -> None:
        """Count the seconds since the last look (the loop calls this once a second)."""
        now = time.monotonic() if now is None else now
        step = min(MAX_STEP_S, max(0.0, now - self._last_look))
        self._last_look = now
        period = self.current_period()
        if period in self._frozen:
            self._bins = None
            return
        fresh = period not in self._tallies
        tally = self._tallies.setdefault(period, Tally())
        shared = self._shared()
        served_any = False
        seen_stats: dict[int, tuple[int, int]] = {}
        mixers = self.jam.mixers()
        for session in self.jam.sessions():
            mixer = mixers.get(session.id)
            if mixer is None:  # closed between the two calls
                continue
            peers = shared.shared_with(session.id) if shared is not None else []
            for participant in list(session.participants.values()):
                slot = mixer.slots[participant.slot] if participant.slot >= 0 else None
                if slot is None:
                    continue
                stats = slot.jitter.stats
                before = self._last_seen.get(id(stats), (stats.played, stats.concealed))
                tally.frames += max(0, stats.played - before[0])
                tally.concealed += max(0, stats.concealed - before[1])
                seen_stats[id(stats)] = (stats.played, stats.concealed)
                if (
                    participant.kind != "human"
                    or participant.via
                    or not participant.connected
                    or now - slot.last_packet_s > LIVE_WITHIN_S
                ):
                    continue
                served_any = True
                if peers:
                    tally.shared_s[peers[0]] = tally.shared_s.get(peers[0], 0.0) + step
                else:
                    tally.solo_s += step
        self._last_seen = seen_stats
        if shared is not None:
            for peer, session_id, musicians in shared.seen():
                live = sum(1 for p in musicians if _streaming(mixers, session_id, p, now))
                if live:
                    tally.seen_s[peer] = tally.seen_s.get(peer, 0.0) + step * live
        stats = self.clocks.stats
        clock = (stats.ticks, stats.overruns, stats.skipped)
        if self._last_clock is not None and served_any:
            ticks = clock[0] - self._last_clock[0]
            skipped = clock[2] - self._last_clock[2]
            tally.ticks += max(0, ticks + skipped)
            tally.overruns += max(0, clock[1] - self._last_clock[1] + skipped)
        self._last_clock = clock
        if fresh and not (tally.solo_s or tally.shared_s or tally.seen_s):
            del self._tallies[period]  # nobody served yet: no period to report
            self._bins = None
        else:
            self._bins = tally.latency

    # -------------------------------------------------------------- reading
    def tally(self, period: int) -> Tally:
        """A period's counts so far (empty if nothing was served in it)."""
        return self._tallies.get(period) or Tally()

    def periods(self) -> list[int]:
        """Periods with anything counted, oldest first."""
        return sorted(self._tallies)

    def freeze(self, period: int) -> None:
        """Stop counting into a period (it is being reported)."""
        self._frozen.add(period)

    def flush(self) -> None:
        """Save every tally (a transaction per period)."""
        self._last_flush = time.monotonic()
        now = time.time()
        for period, tally in list(self._tallies.items()):
            self._db.execute(
                "INSERT INTO served (period, tally, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(period) DO UPDATE SET tally = excluded.tally,"
                " updated_at = excluded.updated_at",
                (period, tally.to_json(), now),
            )
        if len(self._tallies) > KEEP_PERIODS:
            oldest = sorted(self._tallies)[: len(self._tallies) - KEEP_PERIODS]
            for period in oldest:
                del self._tallies[period]
                self._db.execute("DELETE FROM served WHERE period = ?", (period,))


def _streaming(mixers: dict[str, Any], session_id: str, participant: Any, now: float) -> bool:
    """Whether a bridged participant's packets reach this node's mix."""
    mixer = mixers.get(session_id)
    if mixer is None or not 0 <= participant.slot < len(mixer.slots):
        return False
    slot = mixer.slots[participant.slot]
    return slot is not None and now - slot.last_packet_s <= LIVE_WITHIN_S
