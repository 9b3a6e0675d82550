"""The royalty pool on anvil: funding, settling a period by Merkle root, claims into splits."""

from __future__ import annotations

from web3 import Web3

from node.chain.deploy import JAM
from node.chain.merkle import Payout, PayoutTree, verify
from tests.chain.conftest import KEYS, SETTLER, Chain, register_work, registration, revert_reason


def _works(chain: Chain, count: int) -> list[int]:
    return [
        register_work(
            chain,
            KEYS[1 + i % 5].address,
            registration(Web3.keccak(text=f"pool work {i}"), [KEYS[1 + i % 5].address], [10000]),
            {},
        )
        for i in range(count)
    ]


def test_the_tree_proves_every_payout_and_nothing_else() -> None:
    for count in (1, 2, 3, 7, 64, 101):
        payouts = [Payout(w, w * 10, w) for w in range(count)]
        tree = PayoutTree(5, payouts)
        assert all(verify(tree.root, 5, p, tree.proof(p.work_id)) for p in payouts)
        assert not verify(tree.root, 5, Payout(0, 1, 0), tree.proof(0))
        assert not verify(tree.root, 6, payouts[0], tree.proof(0))


def _no_operator_share(chain: Chain) -> None:
    """Governance turns the operators' share of the pool's funding off (to see the pool's own
    arithmetic; the share has its own test)."""
    with chain.governance() as timelock:
        chain.send(chain.c["RoyaltyPool"].functions.setOperatorShare(0), timelock)


def test_fund_settle_claim_into_the_split(chain: Chain) -> None:
    pool, works, token = chain.c["RoyaltyPool"], chain.c["WorkRegistry"], chain.c["JamToken"]
    _no_operator_share(chain)
    ids = _works(chain, 3)
    sponsor = chain.accounts[2]
    chain.send(pool.functions.fund(), sponsor, value=Web3.to_wei(3, "ether"))
    chain.send(token.functions.approve(pool.address, 300 * JAM), sponsor)
    chain.send(pool.functions.fundToken(300 * JAM), sponsor)
    payouts = [
        Payout(ids[0], Web3.to_wei(2, "ether"), 100 * JAM),
        Payout(ids[1], Web3.to_wei(1, "ether") - 1, 0),
        Payout(ids[2], 0, 200 * JAM),
    ]
    tree = PayoutTree(1, payouts)
    eth, jam = sum(p.eth for p in payouts), sum(p.token for p in payouts)
    assert (
        revert_reason(pool.functions.settle(1, tree.root, eth, jam, 3), sponsor)
        == f"RoyaltyPoolUnauthorized(caller={sponsor})"
    )
    assert revert_reason(
        pool.functions.settle(1, tree.root, eth + 2, jam, 3), SETTLER.address
    ).startswith("RoyaltyPoolShort")
    chain.send(pool.functions.settle(1, tree.root, eth, jam, 3), SETTLER.address)
    assert pool.functions.unallocated().call() == [1, 0], "one wei of dust carries over"
    assert (
        revert_reason(pool.functions.settle(1, tree.root, 0, 0, 3), SETTLER.address)
        == "RoyaltyPoolSettled(periodId=1)"
    )
    first = payouts[0]
    wrong = pool.functions.claim(1, first.work_id, first.eth + 1, first.token, tree.proof(0))
    assert revert_reason(wrong, sponsor).startswith("RoyaltyPoolBadProof")
    for p in payouts:  # anyone may claim for a work
        chain.send(
            pool.functions.claim(1, p.work_id, p.eth, p.token, tree.proof(p.work_id)),
            chain.accounts[6],
        )
        assert pool.functions.isClaimed(1, p.work_id).call()
    again = pool.functions.claim(1, first.work_id, first.eth, first.token, tree.proof(0))
    assert revert_reason(again, sponsor) == f"RoyaltyPoolClaimed(periodId=1, workId={ids[0]})"
    # Into the split, less the 2.5 % protocol fee, as any payment.
    detail = works.functions.work(ids[0]).call()
    assert (detail[5], detail[6]) == (Web3.to_wei(1.95, "ether"), 97_500 * JAM // 1000)
    settled = pool.functions.period(1).call()
    assert settled[1:5] == [eth, jam, eth, jam]
    assert chain.w3.eth.get_balance(pool.address) == 1


def test_a_wrong_root_cannot_pay_more_than_the_period_settled(chain: Chain) -> None:
    pool = chain.c["RoyaltyPool"]
    _no_operator_share(chain)
    ids = _works(chain, 2)
    chain.send(pool.functions.fund(), chain.accounts[2], value=10**18)
    # A settler's bad tree: its leaves add up to more than the settled total.
    tree = PayoutTree(2, [Payout(ids[0], 6 * 10**17, 0), Payout(ids[1], 6 * 10**17, 0)])
    chain.send(pool.functions.settle(2, tree.root, 10**18, 0, 2), SETTLER.address)
    chain.send(pool.functions.claim(2, ids[0], 6 * 10**17, 0, tree.proof(ids[0])), SETTLER.address)
    assert (
        revert_reason(
            pool.functions.claim(2, ids[1], 6 * 10**17, 0, tree.proof(ids[1])), SETTLER.address
        )
        == "RoyaltyPoolOverdrawn(periodId=2)"
    )


def test_only_governance_appoints_settlers(chain: Chain) -> None:
    pool = chain.c["RoyaltyPool"]
    stranger = chain.accounts[3]
    assert revert_reason(pool.functions.setSettler(stranger, True), stranger).startswith(
        "RoyaltyPoolUnauthorized"
    )
    timelock = chain.deployment.addresses["JamTimelock"]
    chain.w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
    chain.w3.provider.make_request("anvil_setBalance", [timelock, hex(10**18)])  # type: ignore[arg-type]
    chain.send(pool.functions.setSettler(stranger, True), timelock)
    chain.send(pool.functions.setSettler(SETTLER.address, False), timelock)
    assert pool.functions.isSettler(stranger).call()
    assert not pool.functions.isSettler(SETTLER.address).call()


def test_the_treasury_funds_the_pool_through_governance(chain: Chain) -> None:
    # What an executed proposal does: the timelock (the treasury) approves and funds in JAM.
    pool, token = chain.c["RoyaltyPool"], chain.c["JamToken"]
    timelock = chain.deployment.addresses["JamTimelock"]
    chain.w3.provider.make_request("anvil_impersonateAccount", [timelock])  # type: ignore[arg-type]
    chain.w3.provider.make_request("anvil_setBalance", [timelock, hex(10**18)])  # type: ignore[arg-type]
    before = token.functions.balanceOf(timelock).call()
    chain.send(token.functions.approve(pool.address, 5_000 * JAM), timelock)
    chain.send(pool.functions.fundToken(5_000 * JAM), timelock)
    assert token.functions.balanceOf(timelock).call() == before - 5_000 * JAM
    # 10 % of what funds the pool goes to the node operators' rewards (this period's pot).
    assert pool.functions.unallocated().call() == [0, 4_500 * JAM]
    rewards = chain.c["NodeRewards"]
    assert token.functions.balanceOf(rewards.address).call() == 500 * JAM
    current = rewards.functions.currentPeriod().call()
    assert rewards.functions.period(current).call()[1] == 500 * JAM
    chain.send(pool.functions.fund(), chain.accounts[2], value=10**18)
    assert chain.w3.eth.get_balance(rewards.address) == 10**17
    assert pool.functions.operatorShare().call() == [1000, rewards.address]
    assert revert_reason(pool.functions.setOperatorShare(0), chain.accounts[2]).startswith(
        "RoyaltyPoolUnauthorized"
    )
    with chain.governance() as governance:
        assert revert_reason(pool.functions.setOperatorShare(3001), governance).startswith(
            "RoyaltyPoolShareTooHigh"
        )
    assert revert_reason(pool.functions.fund(), chain.accounts[1]) == "RoyaltyPoolZero()"
