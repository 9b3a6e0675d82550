"""Node operators earn by the quality they serve: two nodes share a bridged session and serve
sessions of their own at different quality for one period; their earnings differ as the
formula says, to the wei; an inflated report is caught by the node that shared the session."""

from __future__ import annotations

import pytest
from web3 import Web3

from node.chain.rewards import Formula, Served, countersign
from node.errors import InputError
from tests.chain.conftest import ATTESTER, KEYS, Chain, revert_reason

ETH = 10**18
DAY = 86_400


def _register_second_node(chain: Chain) -> None:
    nodes, token = chain.c["NodeRegistry"], chain.c["JamToken"]
    node = KEYS[7].address
    stake = chain.deployment.params["min_stake"]
    chain.send(token.functions.approve(nodes.address, stake), node)
    chain.send(nodes.functions.stake(stake), node)
    chain.send(nodes.functions.register("12D3KooWSecond", "http://127.0.0.1:2", "{}"), node)


def _to_period_end(chain: Chain, period: int) -> None:
    ends, _, _ = chain.c["NodeRewards"].functions.periodTimes(period).call()
    now = chain.w3.eth.get_block("latest")["timestamp"]
    chain.advance(max(1, ends - now + 1))


def _report(chain: Chain, period: int, node, served: Served, cosigns) -> None:  # type: ignore[no-untyped-def]
    chain.send(
        chain.c["NodeRewards"].functions.report(period, served.as_tuple(), cosigns), node.address
    )


def test_earnings_follow_served_quality_and_an_inflated_report_is_caught(chain: Chain) -> None:
    rewards, w3 = chain.c["NodeRewards"], chain.w3
    _register_second_node(chain)
    a, b = ATTESTER, KEYS[7]  # two registered nodes
    chain_id, address = w3.eth.chain_id, rewards.address
    period = rewards.functions.currentPeriod().call()
    chain.send(rewards.functions.fund(), chain.accounts[2], value=10 * ETH)
    assert "NodeRewardsWrongPhase" in revert_reason(
        rewards.functions.report(period, Served(1, 0, 0, 0, 0).as_tuple(), []), a.address
    )
    _to_period_end(chain, period)
    # A served well: 0.2 % concealed, 6 ms added, 0.05 % overruns. B worse: 1.5 %, 18 ms, 0.8 %.
    # They shared a bridged session of 120 musician-minutes; each countersigns the other.
    good = Served(solo_minutes=600, shared_minutes=120, concealed_bps=20, added_ms=6, overrun_bps=5)
    worse = Served(
        solo_minutes=300, shared_minutes=120, concealed_bps=150, added_ms=18, overrun_bps=80
    )
    by_b = countersign(b, chain_id, address, period, a.address, 120, 119.6, good)
    by_a = countersign(a, chain_id, address, period, b.address, 120, 120.4, worse)
    # B would like 400 shared minutes: A measured 120 and refuses to countersign them ...
    with pytest.raises(InputError, match="claims 400 shared musician-minutes"):
        countersign(a, chain_id, address, period, b.address, 400, 120.4, worse)
    # ... and A's signature over 120 does not carry 400, nor does B's own signature.
    inflated = Served(300, 400, 150, 18, 80)
    for cosign in (
        (a.address, 400, by_a),
        (a.address, 400, countersign(b, chain_id, address, period, b.address, 400, 400, inflated)),
    ):
        assert "NodeRewardsBadCosign" in revert_reason(
            rewards.functions.report(period, inflated.as_tuple(), [cosign]), b.address
        )
    # Countersigned minutes must add up to the shared minutes claimed.
    assert "NodeRewardsBadReport" in revert_reason(
        rewards.functions.report(
            period, Served(300, 200, 150, 18, 80).as_tuple(), [(a.address, 120, by_a)]
        ),
        b.address,
    )
    _report(chain, period, a, good, [(b.address, 120, by_b)])
    _report(chain, period, b, worse, [(a.address, 120, by_a)])
    assert "NodeRewardsAlreadyReported" in revert_reason(
        rewards.functions.report(period, good.as_tuple(), [(b.address, 120, by_b)]), a.address
    )
    formula = Formula.from_chain(rewards.functions.parameters().call()[0])
    assert (
        formula.quality(good)
        == 10_000 - 20 * 20 - 0 - 10 * 5
        == rewards.functions.quality(20, 6, 5).call()
    )
    assert formula.quality(worse) == 10_000 - 20 * 150 - 200 * 8 - 10 * 80 == 4600
    weights = {a.address: formula.weight(good), b.address: formula.weight(worse)}
    total = sum(weights.values())
    assert "NodeRewardsWrongPhase" in revert_reason(
        rewards.functions.claim(period, a.address), a.address
    )
    _, _, dispute_end = rewards.functions.periodTimes(period).call()
    chain.advance(dispute_end - w3.eth.get_block("latest")["timestamp"] + 1)
    current = rewards.functions.currentPeriod().call()
    current_pot = rewards.functions.period(current).call()[0]
    paid = 0
    for node in (a, b):
        entry, eth, _ = rewards.functions.entry(period, node.address).call()
        paid += eth
        assert (
            entry[0] == weights[node.address] and eth == 10 * ETH * weights[node.address] // total
        )
        before = w3.eth.get_balance(node.address)
        receipt = chain.send(rewards.functions.claim(period, node.address), node.address)
        gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert w3.eth.get_balance(node.address) - before + gas == eth
        assert "NodeRewardsNothingOwed" in revert_reason(
            rewards.functions.claim(period, node.address), node.address
        )
    # Both withdrew: the wei the two shares' rounding left behind go to the current pot.
    dust = 10 * ETH - paid
    assert 0 < dust < 2
    pot = rewards.functions.period(period).call()
    assert (pot[3], pot[5]) == (pot[0], pot[2])  # all paid out, all weight settled
    assert rewards.functions.period(current).call()[0] == current_pot + dust
    # A (9 550 bps × 720 min) earns 3.6 × what B (4 600 × 420) does.
    assert round(weights[a.address] / weights[b.address], 2) == 3.56

    # Next period B moves its inflated minutes into "solo", where no countersignature is asked.
    # A shared a session with B in this period and finds none of its countersignatures in B's
    # report: it disputes, and governance voids the report; its share goes to the next pot.
    period = rewards.functions.currentPeriod().call()
    chain.send(rewards.functions.fund(), chain.accounts[2], value=4 * ETH)
    _to_period_end(chain, period)
    good2 = Served(500, 0, 20, 6, 5)
    _report(chain, period, a, good2, [])
    _report(chain, period, b, Served(700, 0, 150, 18, 80), [])
    chain.send(
        rewards.functions.dispute(period, b.address, Web3.keccak(text="shared 120 min, no cosign")),
        a.address,
    )
    assert "NodeRewardsUnauthorized" in revert_reason(
        rewards.functions.dispute(period, a.address, b"\0" * 32), chain.accounts[3]
    )
    _, _, dispute_end = rewards.functions.periodTimes(period).call()
    chain.advance(dispute_end - w3.eth.get_block("latest")["timestamp"] + 1)
    assert "NodeRewardsDisputed" in revert_reason(
        rewards.functions.claim(period, b.address), b.address
    )
    later = rewards.functions.currentPeriod().call()
    before_pot = rewards.functions.period(later).call()[0]
    with chain.governance() as timelock:
        chain.send(rewards.functions.resolve(period, b.address, False), timelock)
    w_a, w_b = formula.weight(good2), 700 * 4600
    voided = 4 * ETH * w_b // (w_a + w_b)
    assert rewards.functions.period(later).call()[0] - before_pot == voided
    assert "NodeRewardsNothingOwed" in revert_reason(
        rewards.functions.claim(period, b.address), b.address
    )
    chain.send(rewards.functions.claim(period, a.address), a.address)
    # Conservation: what came in is what was paid, what moved on, and rounding dust.
    held = w3.eth.get_balance(rewards.address)
    pots = [rewards.functions.period(p).call() for p in range(later + 1)]
    assert held == sum(p[0] - p[3] for p in pots)


def test_operators_see_and_withdraw_their_earnings_from_the_cli(
    chain: Chain,
    tmp_path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from node.cli import main
    from node.keys import load_or_create_key

    rewards, w3 = chain.c["NodeRewards"], chain.w3
    deployment = tmp_path / "deployment.json"
    chain.deployment.save(deployment)
    monkeypatch.setenv("JAMNET_KEY_PASSWORD", "")
    keyfile = tmp_path / "node.json"
    load_or_create_key(keyfile, password="", private_key=ATTESTER.key.hex())
    url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
    flags = ["--keyfile", str(keyfile), "--rpc-url", url, "--deployment", str(deployment)]
    period = rewards.functions.currentPeriod().call()
    chain.send(rewards.functions.fund(), chain.accounts[2], value=3 * ETH)
    _to_period_end(chain, period)
    _report(chain, period, ATTESTER, Served(90, 0, 10, 5, 0), [])
    capsys.readouterr()
    assert main(["operator", "earnings", *flags]) == 0
    out = capsys.readouterr().out
    assert "weight = musician-minutes × quality" in out
    assert f"{period}  " in out and "98 %" in out and "100.0 %" in out and "claimable in" in out
    _, _, dispute_end = rewards.functions.periodTimes(period).call()
    chain.advance(dispute_end - w3.eth.get_block("latest")["timestamp"] + 1)
    assert main(["operator", "claim", str(period), *flags]) == 0
    assert "withdrew period" in capsys.readouterr().out
    assert main(["operator", "earnings", *flags]) == 0
    assert "withdrawn" in capsys.readouterr().out


def test_one_period_is_weighed_by_one_formula(chain: Chain) -> None:
    """Governance changing the formula in the middle of a report window does not reweigh the
    reports still to come for that period; the next period uses the new formula."""
    rewards = chain.c["NodeRewards"]
    _register_second_node(chain)
    period = rewards.functions.currentPeriod().call()
    chain.send(rewards.functions.fund(), chain.accounts[2], value=ETH)
    _to_period_end(chain, period)
    served = Served(100, 0, 100, 20, 0)
    _report(chain, period, ATTESTER, served, [])
    with chain.governance() as timelock:
        chain.send(rewards.functions.setFormula((0, 0, 0, 0)), timelock)
        assert "NodeRewardsUnauthorized" in revert_reason(
            rewards.functions.setFormula((1, 1, 1, 1)), chain.accounts[3]
        )
    _report(chain, period, KEYS[7], served, [])
    old = Formula().weight(served)  # 10000 − 20·100 − 200·10 = 6000 bps
    for node in (ATTESTER.address, KEYS[7].address):
        assert rewards.functions.entry(period, node).call()[0][0] == old == 100 * 6000
    assert list(rewards.functions.periodFormula(period).call()) == [20, 200, 10, 10]
    assert list(rewards.functions.periodFormula(period + 1).call()) == [0, 0, 0, 0]
