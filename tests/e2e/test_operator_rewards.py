"""Node operators' rewards end to end, node side: two real nodes (one on its embedded anvil,
the other joined to that chain) with real libp2p hosts share a bridged session, each with a
real aiortc musician, for over a minute. Each node meters what it served; when the period
ends each reports it through its outbox, with the other's countersignature fetched over
libp2p. Node A inflates its figures (as a dishonest operator would): B refuses to
countersign them, A's report goes in without B's signature, and B disputes it by itself.
Governance voids it: B's reward is its share by weight (minutes × its measured quality) and
A's share moves on to the current period's pot."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from web3 import Web3

from client.session import ArraySink, ArraySource, JamClient
from node.app import Node
from node.chain.rewards import Formula, Served
from tests.conftest import node_config, tone
from tests.e2e.test_royalty_loop import JAMNET
from tests.p2p.test_federation import discovered, hears
from tests.p2p.test_network import until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
ETH = 10**18
SHARED_S = 68.0  # over a minute each way: minutes are whole on chain


def _config(data: Path, bootstrap: list[str], chain: dict[str, Any]) -> Any:
    """As tests.p2p.test_federation.p2p_config, on a chain, with a quick rewards agent."""
    return node_config(
        data,
        p2p={"enabled": True, "listen": "/ip4/127.0.0.1/tcp/0", "bootstrap": bootstrap,
             "dht": False},
        spatial={"binaural": False},
        media={"opus_complexity": 0},
        chain={"rewards_check_s": 0.5, **chain},
    )  # fmt: skip


def _register(w3: Web3, deployment: Any, node: Node) -> None:
    """Stake and register node A (joined to B's devnet) as its operator would."""
    assert node.chain is not None and node.chain.account is not None and node.p2p is not None
    me = node.chain.account.address
    c = deployment.contracts(w3)
    nodes, token = c["NodeRegistry"], c["JamToken"]
    stake = int(nodes.functions.parameters().call()[0])
    provider = w3.provider
    provider.make_request("anvil_setBalance", [me, hex(10 * ETH)])  # type: ignore[arg-type]
    w3.eth.wait_for_transaction_receipt(
        token.functions.transfer(me, stake).transact({"from": w3.eth.accounts[-1]})
    )
    provider.make_request("anvil_impersonateAccount", [me])  # type: ignore[arg-type]
    try:
        for call in (
            token.functions.approve(nodes.address, stake),
            nodes.functions.stake(stake),
            nodes.functions.register(node.p2p.peer_id, node.url, "{}"),
        ):
            receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": me}))
            assert receipt["status"] == 1
    finally:
        provider.make_request("anvil_stopImpersonatingAccount", [me])  # type: ignore[arg-type]


def _advance_past(w3: Web3, when: int) -> None:
    now = int(w3.eth.get_block("latest")["timestamp"])
    w3.provider.make_request("evm_increaseTime", [max(1, when - now + 1)])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


async def _status(http: aiohttp.ClientSession, node: Node) -> dict[str, Any]:
    async with http.get(f"{node.url}api/chain/rewards") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_nodes_meter_report_countersign_and_dispute_by_themselves(tmp_path: Path) -> None:
    b_config = _config(tmp_path / "b", [], {"mode": "devnet", "devnet_port": 0})
    async with aiohttp.ClientSession() as http, Node(b_config) as b:
        assert b.p2p is not None and b.chain is not None and b.chain.w3 is not None
        assert b.operator is not None and b.chain.deployment is not None
        w3, deployment = b.chain.w3, b.chain.deployment
        a_config = _config(
            tmp_path / "a",
            b.p2p.addrs(),
            {
                "mode": "external",
                "rpc_url": b.chain.rpc_url,
                "deployment_file": str(tmp_path / "b" / "chain" / "deployment.json"),
            },
        )
        async with Node(a_config) as a:
            assert a.p2p is not None and a.operator is not None and a.chain is not None
            await asyncio.to_thread(_register, w3, deployment, a)
            rewards = deployment.contracts(w3)["NodeRewards"]
            period = int(rewards.functions.currentPeriod().call())
            w3.eth.wait_for_transaction_receipt(
                rewards.functions.fund().transact({"from": w3.eth.accounts[2], "value": ETH})
            )
            pot = int(rewards.functions.period(period).call()[0])
            async with (
                JamClient(b.url, Account.create(), "bea") as on_b,
                JamClient(a.url, Account.create(), "ada") as on_a,
            ):
                sid = (await on_b.create_session("paid to serve"))["id"]
                await discovered(http, [a], sid)
                await on_b.join(sid)
                await on_a.join(sid)  # through A: A bridges the session from B
                sinks = {"a": ArraySink(), "b": ArraySink()}
                await on_b.connect(ArraySource(tone(660.0, 1.0), loop=True), sinks["b"])
                await on_a.connect(ArraySource(tone(440.0, 1.0), loop=True), sinks["a"])

                async def both_hear() -> bool:
                    return hears(sinks["b"], 440.0) and hears(sinks["a"], 660.0)

                await until(both_hear, timeout_s=30)
                assert a.operator.meter is not None and b.operator.meter is not None

                async def a_minute_each_way() -> bool:
                    ta = a.operator.meter.tally(period)  # type: ignore[union-attr]
                    tb = b.operator.meter.tally(period)  # type: ignore[union-attr]
                    return (
                        min(
                            ta.shared_s.get(b.p2p.peer_id, 0.0),  # type: ignore[union-attr]
                            ta.seen_s.get(b.p2p.peer_id, 0.0),  # type: ignore[union-attr]
                            tb.shared_s.get(a.p2p.peer_id, 0.0),  # type: ignore[union-attr]
                            tb.seen_s.get(a.p2p.peer_id, 0.0),  # type: ignore[union-attr]
                        )
                        >= SHARED_S
                    )

                await until(a_minute_each_way, timeout_s=SHARED_S + 90)
                shown = (await _status(http, b))["this_node"]
                assert shown["metering"] and shown["current_period"] == period
                metered = shown["periods"][0]["metered"]
                assert metered["shared_minutes"][a.p2p.peer_id] >= 1.0
                assert metered["seen_minutes"][a.p2p.peer_id] >= 1.0
            # Nobody is served any more. A's operator inflates: ten solo hours and five shared
            # minutes with B (B saw one).
            ta = a.operator.meter.tally(period)
            ta.solo_s += 600 * 60
            ta.shared_s[b.p2p.peer_id] = 5 * 60.0
            tb = b.operator.meter.tally(period)
            ends, _, dispute_end = rewards.functions.periodTimes(period).call()
            _advance_past(w3, int(ends))

            def entry(node: Node) -> tuple[Any, ...]:
                assert node.chain is not None and node.chain.account is not None
                return tuple(rewards.functions.entry(period, node.chain.account.address).call())

            async def both_reported() -> bool:
                entries = [await asyncio.to_thread(entry, n) for n in (a, b)]
                return all(e[0][0] > 0 for e in entries)

            await until(both_reported, timeout_s=90)
            b_row = (await _status(http, b))["this_node"]["periods"]
            b_report = next(p for p in b_row if p["period"] == period)["report"]
            assert b_report["state"] == "reported", b_report
            assert b_report["countersigned_by"] == [
                {"node": a.chain.account.address, "minutes": b_report["figures"]["shared_minutes"]}  # type: ignore[union-attr]
            ]
            assert b_report["figures"]["shared_minutes"] == int(tb.shared_s[a.p2p.peer_id] // 60)
            a_report = next(
                p for p in (await _status(http, a))["this_node"]["periods"] if p["period"] == period
            )["report"]
            assert a_report["figures"]["shared_minutes"] == 0  # refused, left out, not moved
            assert "not countersigned" in a_report["note"]
            assert b.operator.answered["refused"] >= 1
            assert a.operator.answered["countersigned"] >= 1
            # The operator's view from the terminal: what B metered, reported, who signed it.
            shown = await asyncio.to_thread(
                subprocess.run,
                [*JAMNET, "operator", "served", "--node", b.url],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            row = next(line for line in shown.stdout.splitlines() if line.startswith(f"{period} "))
            assert "reported" in row and a.chain.account.address[:10] in row, shown.stdout  # type: ignore[union-attr]
            # B's weight is minutes × quality, from the figures it measured.
            formula = Formula.from_chain(rewards.functions.periodFormula(period).call())
            served = Served(**b_report["figures"])
            assert entry(b)[0][0] == formula.weight(served)

            # B disputes A's report by itself: it saw A's musician and A carries no signature.
            async def disputed() -> bool:
                return bool((await asyncio.to_thread(entry, a))[0][1])

            await until(disputed, timeout_s=60)
            timelock = deployment.addresses["JamTimelock"]
            w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
            w3.provider.make_request("anvil_setBalance", [timelock, hex(ETH)])  # type: ignore[arg-type]
            a_address = a.chain.account.address  # type: ignore[union-attr]
            resolved_in = int(rewards.functions.currentPeriod().call())
            w3.eth.wait_for_transaction_receipt(
                rewards.functions.resolve(period, a_address, False).transact({"from": timelock})
            )
            _advance_past(w3, int(dispute_end))
            (b_weight, is_disputed, voided, claimed), eth, _ = entry(b)
            assert (is_disputed, voided, claimed) == (False, False, False)
            a_weight = entry(a)[0][0]
            assert entry(a)[0][2]  # voided
            total = rewards.functions.period(period).call()[2]
            assert total == a_weight + b_weight
            assert eth == pot * b_weight // total  # B's share by weight; A's went on
            assert rewards.functions.period(resolved_in).call()[0] == pot * a_weight // total

            # Bad countersign requests get a clear refusal, and change nothing.
            ended = {"minutes": 1, "concealed_bps": 0, "added_ms": 0, "overrun_bps": 0}
            for bad, why in [
                ({"period": "x"}, "period must be a whole number"),
                ({"period": period, "minutes": 0}, "minutes must be"),
                ({"period": period + 99, "reporter": a_address, **ended}, "has not ended"),
                ({"period": period, **ended, "reporter": "0x12"}, "reporter must be an address"),
                ({"period": period, "reporter": a_address, **ended}, "not the registered node"),
            ]:
                answer = await b.operator.answer("12D3KooWNobody", {"type": "served", **bad})
                assert answer["ok"] is False and why in answer["error"], (bad, answer)
            # A peer asking again and again is held to a few requests a minute.
            answers = [
                await b.operator.answer("12D3KooWNobody", {"type": "served", "period": period})
                for _ in range(20)
            ]
            assert "countersign requests a minute" in answers[-1]["error"]
