"""Stateful property test on anvil: random payments to a three-generation family of works,
fixed-price licence sales, and exclusive auctions (commits with random deposits, honest and
copied reveals, bidders who never reveal, settlements, refund withdrawals, contributors'
withdrawals), against a model.

After every step: every wei paid in (directly, by licences, by auctions) is either a work's
total, a pending fee, or a deposit the licensing contract holds, and WorkRegistry holds what
its contributors can still withdraw plus fees (conservation across derivative chains, licences
and auctions); the licensing contract holds exactly the deposits of the open auction plus the
refunds not yet withdrawn. At each settlement the winner is the highest revealed bid (ties: the
earlier commitment) and pays exactly the second-highest (or the reserve); every losing revealed
deposit is refundable; a second withdrawal of anything fails.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account import Account
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from web3 import Web3
from web3.logs import DISCARD

from node.chain.licences import commitment, parse_territory
from tests.chain.conftest import Chain, register_work, registration, revert_reason

ETH = 10**18
BPS = 10_000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_markets_conserve_and_auctions_pay_the_second_price(chain: Chain) -> None:
    works, licensing, w3 = chain.c["WorkRegistry"], chain.c["Licensing"], chain.w3
    registrant = chain.accounts[1]
    bidders = chain.accounts[3:7]
    ww = parse_territory("WW")

    def now() -> int:
        return int(w3.eth.get_block("latest")["timestamp"])

    class Markets(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            self.snapshot = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
            self.writers = [Account.create() for _ in range(3)]
            base = works.functions.workCount().call()
            self.family: list[int] = []
            for depth, writer in enumerate(self.writers):
                reg = registration(
                    Web3.keccak(text=f"family {base} {depth}"),
                    [registrant, writer.address],
                    [6667, 3333],
                    nonce=20_000 + base + depth,
                    parents=tuple(self.family[-1:]),
                    derivative_bps=(1000, 700, 0)[depth],
                )
                self.family.append(register_work(chain, registrant, reg, {writer.address: writer}))
            self.terms = []
            for work in self.family:
                receipt = chain.send(
                    licensing.functions.offer(work, 0, 30, ww, ETH // 10), registrant
                )
                events = licensing.events.TermsOffered().process_receipt(receipt, errors=DISCARD)
                self.terms.append(int(events[0]["args"]["termsId"]))
            self.registry_in = 0  # wei that entered WorkRegistry
            self.registry_out = self._registry_balance_offset = w3.eth.get_balance(works.address)
            self.withdrawn = 0
            self.fees_before = works.functions.pendingFees().call()[0]
            self.totals_before = sum(works.functions.work(w).call()[5] for w in self.family)
            self.auction: dict[str, Any] | None = None
            self.refunds = dict.fromkeys(bidders, 0)
            self.held_before = licensing.functions.heldDeposits().call()

        def teardown(self) -> None:
            w3.provider.make_request("evm_revert", [self.snapshot])  # type: ignore[arg-type]

        @rule(which=st.integers(0, 2), wei=st.integers(1, 10**19))
        def pay(self, which: int, wei: int) -> None:
            chain.send(works.functions.pay(self.family[which]), chain.accounts[2], value=wei)
            self.registry_in += wei

        @rule(which=st.integers(0, 2))
        def buy(self, which: int) -> None:
            call = licensing.functions.buy(self.terms[which], chain.accounts[2])
            blocked = licensing.functions.exclusiveUntil(self.family[which], 0).call()
            if blocked > now():
                assert "LicensingExclusive" in revert_reason(call, chain.accounts[2], ETH // 10)
                return
            chain.send(call, chain.accounts[2], value=ETH // 10)
            self.registry_in += ETH // 10

        @precondition(lambda self: self.auction is None)
        @rule(which=st.integers(0, 2), reserve=st.integers(1, 3 * ETH))
        def open_auction(self, which: int, reserve: int) -> None:
            work = self.family[which]
            t = now()
            call = licensing.functions.createAuction(work, 1, 90, ww, reserve, t + 600, t + 4200)
            if (
                licensing.functions.exclusiveUntil(work, 1).call() > t
            ):  # the last one's licence runs
                assert "LicensingExclusive" in revert_reason(call, registrant)
                return
            receipt = chain.send(call, registrant)
            events = licensing.events.AuctionCreated().process_receipt(receipt, errors=DISCARD)
            self.auction = {
                "id": int(events[0]["args"]["auctionId"]),
                "work": work,
                "reserve": reserve,
                "bids": {},
                "phase": "commit",
            }

        @precondition(lambda self: self.auction is not None and self.auction["phase"] == "commit")
        @rule(
            who=st.sampled_from(bidders),
            value=st.integers(0, 5 * ETH),
            extra=st.integers(0, 2 * ETH),
            above=st.booleans(),
        )
        def commit(self, who: str, value: int, extra: int, above: bool) -> None:
            a = self.auction
            assert a is not None
            salt = Web3.keccak(text=f"{who}{value}{extra}")
            deposit = max(a["reserve"], value + extra if not above else max(1, value - extra))
            call = licensing.functions.commit(a["id"], commitment(a["id"], who, value, salt))
            if who in a["bids"]:
                assert "LicensingBadCommit" in revert_reason(call, who, deposit)
                return
            chain.send(call, who, value=deposit)
            a["bids"][who] = {
                "value": value,
                "salt": salt,
                "deposit": deposit,
                "seq": len(a["bids"]),
                "revealed": False,
            }

        @precondition(lambda self: self.auction is not None and self.auction["phase"] == "commit")
        @rule()
        def close_commits(self) -> None:
            chain.advance(600)
            assert self.auction is not None
            self.auction["phase"] = "reveal"

        @precondition(
            lambda self: (
                self.auction is not None
                and self.auction["phase"] == "reveal"
                and self.auction["bids"]
            )
        )
        @rule(data=st.data(), copied=st.booleans())
        def reveal(self, data: Any, copied: bool) -> None:
            a = self.auction
            assert a is not None
            who = data.draw(st.sampled_from(sorted(a["bids"])))
            bid = a["bids"][who]
            sender = bidders[(bidders.index(who) + 1) % len(bidders)] if copied else who
            call = licensing.functions.reveal(a["id"], bid["value"], bid["salt"])
            if copied or bid["revealed"]:
                assert "LicensingBadReveal" in revert_reason(call, sender)
                return
            chain.send(call, who)
            bid["revealed"] = True

        @precondition(lambda self: self.auction is not None and self.auction["phase"] == "reveal")
        @rule()
        def settle(self) -> None:
            a = self.auction
            assert a is not None
            chain.advance(3600)
            revealed = [
                (min(b["value"], b["deposit"]), -b["seq"], who)
                for who, b in a["bids"].items()
                if b["revealed"]
            ]
            valid = sorted((r for r in revealed if r[0] >= a["reserve"]), reverse=True)
            receipt = chain.send(licensing.functions.settle(a["id"]), chain.accounts[8])
            settled = licensing.events.AuctionSettled().process_receipt(receipt, errors=DISCARD)[0][
                "args"
            ]
            forfeited = sum(b["deposit"] for b in a["bids"].values() if not b["revealed"])
            assert settled["forfeited"] == forfeited
            price = 0
            if valid:
                winner = valid[0][2]
                price = max(valid[1][0] if len(valid) > 1 else 0, a["reserve"])
                assert settled["winner"] == winner and settled["price"] == price
            else:
                winner = None
                assert int(settled["winner"], 16) == 0 and settled["price"] == 0
            for who, b in a["bids"].items():
                if b["revealed"]:
                    self.refunds[who] += b["deposit"] - (price if who == winner else 0)
            self.registry_in += price + forfeited
            self.auction = None

        @rule(who=st.sampled_from(bidders))
        def withdraw_refunds(self, who: str) -> None:
            call = licensing.functions.withdrawRefunds(who)
            if self.refunds[who] == 0:
                assert "LicensingNothingOwed" in revert_reason(call, who)
                return
            chain.send(call, who)
            self.refunds[who] = 0

        @rule(which=st.integers(0, 2), writer=st.integers(0, 2))
        def contributor_withdraws(self, which: int, writer: int) -> None:
            account = self.writers[writer]
            owed = works.functions.owedEth(self.family[which], account.address).call()
            if owed == 0:
                return
            w3.provider.make_request("anvil_setBalance", [account.address, hex(10**18)])  # type: ignore[arg-type]
            tx = works.functions.withdraw(self.family[which]).build_transaction(
                {
                    "from": account.address,
                    "nonce": w3.eth.get_transaction_count(account.address),
                    "gas": 200_000,
                    "maxFeePerGas": 10**10,
                    "maxPriorityFeePerGas": 1,
                }
            )
            raw = account.sign_transaction(tx).raw_transaction
            assert (
                w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))["status"] == 1
            )
            self.withdrawn += owed
            assert works.functions.owedEth(self.family[which], account.address).call() == 0

        @invariant()
        def conserved(self) -> None:
            if not hasattr(self, "family"):
                return
            totals = (
                sum(works.functions.work(w).call()[5] for w in self.family) - self.totals_before
            )
            fees = works.functions.pendingFees().call()[0] - self.fees_before
            assert totals + fees == self.registry_in  # across the family, nothing lost to rounding
            assert (
                w3.eth.get_balance(works.address)
                == self._registry_balance_offset + self.registry_in - self.withdrawn
            )
            open_deposits = (
                0
                if self.auction is None
                else sum(b["deposit"] for b in self.auction["bids"].values())
            )
            held = licensing.functions.heldDeposits().call() - self.held_before
            assert held == open_deposits + sum(self.refunds.values())
            assert (
                w3.eth.get_balance(licensing.address) == licensing.functions.heldDeposits().call()
            )
            self.checks = getattr(self, "checks", 0) + 1  # one bidder's refund per step, in turn
            who = bidders[self.checks % len(bidders)]
            assert licensing.functions.refundOf(who).call() == self.refunds[who]

    Markets.TestCase.settings = settings(
        max_examples=int(os.environ.get("JAMNET_MARKETS_EXAMPLES", "12")),
        stateful_step_count=20,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    Markets.TestCase().runTest()
