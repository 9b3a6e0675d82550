"""Governance in headless Chromium: devnet faucet, delegate and vote with the page's own key."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from web3 import Web3

from node.app import Node
from tests.conftest import node_config
from tests.e2e.test_browser import CHROMIUM, poll

pytestmark = [pytest.mark.slow, pytest.mark.browser]
JAM = 10**18


async def test_the_page_gets_jam_delegates_and_votes(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node, async_playwright() as pw:
        assert node.chain is not None and node.chain.w3 is not None
        w3: Web3 = node.chain.w3
        contracts = node.chain.deployment.contracts(w3)  # type: ignore[union-attr]
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(node.url)
            await page.wait_for_function("window.jamnetGov && window.jamnetGov.account")
            address = await page.evaluate("window.jamnet.address")
            await page.click("#tabs button[data-view=governance]")
            await page.click("#faucet")
            await page.wait_for_function(
                "window.jamnetGov.account.jam === '1000000000000000000000'"
            )
            await page.click("#delegate")
            await page.wait_for_function(
                "window.jamnetGov.account.votes === '1000000000000000000000'"
            )
            assert contracts["JamToken"].functions.delegates(address).call() == address
            # Four whales (devnet accounts, 1 M JAM each) delegate: together they reach the
            # 4 % quorum. The page proposes (it has exactly the 1 000-vote threshold).
            token, governor, works = (
                contracts["JamToken"],
                contracts["JamGovernor"],
                contracts["WorkRegistry"],
            )
            whales = w3.eth.accounts[1:5]
            for whale in whales:
                w3.eth.wait_for_transaction_receipt(
                    token.functions.delegate(whale).transact({"from": whale})
                )
            advance(w3, 2)  # votes count from the next second
            await page.evaluate("refreshGov()")
            await page.fill("#propose-form input[name=fee_bps]", "100")
            await page.click("#propose-form button")
            description = "Set the protocol fee to 1 %"
            await page.wait_for_function(
                f"window.jamnetGov.proposals.some((p) => p.description === '{description}')",
                timeout=20000,
            )
            text = await page.inner_text("#proposals")
            assert "voting opens in" in text and "quorum 4,000,000 JAM" in text, text
            calldata = works.functions.setProtocolFee(100)._encode_transaction_data()
            proposal = governor.functions.hashProposal(
                [works.address], [0], [calldata], Web3.keccak(text=description)
            ).call()
            advance(w3, 61)
            await page.evaluate("refreshGov()")
            await page.wait_for_selector("#proposals button.vote[data-support='1']", timeout=15000)
            await page.click("#proposals button.vote[data-support='1']")

            async def counted() -> bool:
                return bool(governor.functions.proposalVotes(proposal).call()[1] == 1000 * JAM)

            await poll(counted)
            assert governor.functions.hasVoted(proposal, address).call()
            for whale in whales:
                w3.eth.wait_for_transaction_receipt(
                    governor.functions.castVote(proposal, 1).transact({"from": whale})
                )
            advance(w3, 601)
            await page.evaluate("refreshGov()")
            await page.click("#proposals button.queue", timeout=15000)
            await poll(lambda: _state_is(governor, proposal, 5))  # Queued
            advance(w3, 61)
            await page.evaluate("refreshGov()")
            await page.click("#proposals button.execute", timeout=15000)
            await poll(lambda: _state_is(governor, proposal, 7))  # Executed
            assert works.functions.protocolFeeBps().call() == 100
            assert not errors, errors
            assert await page.evaluate("document.querySelector('#error').textContent") == ""
        finally:
            await browser.close()


def advance(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


async def _state_is(governor: object, proposal: int, state: int) -> bool:
    return bool(governor.functions.state(proposal).call() == state)  # type: ignore[attr-defined]
