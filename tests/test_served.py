"""The served-minutes meter: its figures are the ones NodeRewards weighs, and a restart keeps
what it counted (a real node on its devnet, a real aiortc musician)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from eth_account import Account

from client.session import ArraySink, ArraySource, JamClient
from node.app import Node
from node.served import LATENCY_BINS, Tally
from tests.conftest import node_config, tone


def test_a_tally_gives_the_report_figures_and_survives_json() -> None:
    tally = Tally(solo_s=185.0, frames=9_950, concealed=50, ticks=20_000, overruns=30)
    tally.shared_s["peer"] = 61.0
    tally.seen_s["peer"] = 59.5
    for ms, count in ((4, 10), (6, 20), (9, 9), (700, 1)):
        tally.latency[min(ms, LATENCY_BINS - 1)] += count
    served = tally.served(shared_minutes=1)
    assert served.solo_minutes == 3  # whole minutes: 185 s is 3
    assert served.shared_minutes == 1
    assert served.concealed_bps == 50  # 50 of 10 000 frames: 0.5 %
    assert served.overrun_bps == 15  # 30 of 20 000 ticks
    assert served.added_ms == 6  # the 20th of 40 samples lies in the 6 ms bin
    again = Tally.from_json(tally.to_json())
    assert again == tally
    assert Tally().served().as_tuple() == (0, 0, 0, 0, 0)


@pytest.mark.slow
async def test_the_meter_counts_a_musician_and_keeps_it_across_a_restart(tmp_path: Path) -> None:
    config = node_config(
        tmp_path / "data",
        chain={"mode": "devnet", "devnet_port": 0, "rewards_check_s": 0.2},
    )
    async with Node(config) as node:
        assert node.operator is not None
        async with JamClient(node.url, Account.create(), "solo") as client:
            session = (await client.create_session("alone"))["id"]
            await client.join(session)
            await client.connect(ArraySource(tone(440.0, 1.0), loop=True), ArraySink())
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline:
                meter = node.operator.meter
                if meter is not None and meter.tally(meter.current_period()).solo_s >= 4.0:
                    break
                await asyncio.sleep(0.2)
            meter = node.operator.meter
            assert meter is not None
            period = meter.current_period()
            counted = meter.tally(period)
            assert counted.solo_s >= 4.0 and not counted.shared_s
            assert counted.frames > 0 and counted.ticks > 0 and sum(counted.latency) > 0
    # Stopped: the tally was saved. A restart continues from it.
    async with Node(config) as node:
        assert node.operator is not None
        for _ in range(100):
            if node.operator.meter is not None:
                break
            await asyncio.sleep(0.1)
        assert node.operator.meter is not None
        kept = node.operator.meter.tally(period)
        assert kept.solo_s >= counted.solo_s
        assert kept.frames >= counted.frames
        assert node.operator.status()["periods"][0]["metered"]["solo_minutes"] > 0
