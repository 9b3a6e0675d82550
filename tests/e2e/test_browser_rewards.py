"""Node operators' rewards in headless Chromium: two registered nodes report a period at
different quality; the page (holding one node's key) shows both shares by the formula and
withdraws its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from playwright.async_api import async_playwright
from web3 import Web3

from node.app import Node
from node.chain.rewards import Formula, Served
from tests.conftest import node_config
from tests.e2e.test_browser import CHROMIUM, poll
from tests.e2e.test_browser_gov import advance

pytestmark = [pytest.mark.slow, pytest.mark.browser]
MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


async def test_the_page_shows_operators_rewards_and_withdraws_its_own(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node, async_playwright() as pw:
        assert node.chain is not None and node.chain.w3 is not None
        w3: Web3 = node.chain.w3
        c = node.chain.deployment.contracts(w3)  # type: ignore[union-attr]
        rewards, nodes, token = c["NodeRewards"], c["NodeRegistry"], c["JamToken"]
        keys = [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in (5, 6)]

        def send(call, sender: str, value: int = 0) -> None:  # type: ignore[no-untyped-def]
            tx = call.transact({"from": sender, "value": value})
            assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1

        stake = node.chain.deployment.params["min_stake"]  # type: ignore[union-attr]
        for i, key in enumerate(keys):
            send(token.functions.approve(nodes.address, stake), key.address)
            send(nodes.functions.stake(stake), key.address)
            send(
                nodes.functions.register(f"12D3KooWPage{i}", f"http://127.0.0.1:{9 + i}", "{}"),
                key.address,
            )
        period = rewards.functions.currentPeriod().call()
        send(rewards.functions.fund(), w3.eth.accounts[2], value=Web3.to_wei(2, "ether"))
        ends, _, dispute_end = rewards.functions.periodTimes(period).call()
        advance(w3, ends - w3.eth.get_block("latest")["timestamp"] + 1)
        good, worse = Served(300, 0, 20, 6, 5), Served(300, 0, 150, 18, 80)
        send(rewards.functions.report(period, good.as_tuple(), []), keys[0].address)
        send(rewards.functions.report(period, worse.as_tuple(), []), keys[1].address)
        advance(w3, dispute_end - w3.eth.get_block("latest")["timestamp"] + 1)
        formula = Formula()
        share = formula.weight(good) / (formula.weight(good) + formula.weight(worse))

        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.add_init_script(
                f"localStorage.setItem('jamnet.key', '{keys[0].key.to_0x_hex()}')"
            )
            await page.goto(node.url)
            await page.click("#tabs button[data-view=governance]")
            await page.wait_for_selector("#rewards li[data-period]")
            text = await page.inner_text("#rewards")
            assert f"{100 * share:.1f} % of the weight" in text and "(you)" in text, text
            assert "quality 95.50 %" in text and "quality 46.00 %" in text
            assert "weight = musician-minutes × quality" in await page.inner_text(
                "#rewards-summary"
            )
            # The node's own meter (node.served): nobody was served here.
            served = await page.inner_text("#rewards-node")
            assert served.startswith("this node, period ") and "nothing served yet" in served
            before = w3.eth.get_balance(keys[0].address)
            await page.click("#rewards button.claim-reward")

            async def withdrawn() -> bool:
                await page.evaluate("refreshRewards()")
                return "withdrawn" in await page.inner_text(
                    f"#rewards li[data-node='{keys[0].address}']"
                )

            await poll(withdrawn)
            expected = (
                Web3.to_wei(2, "ether")
                * formula.weight(good)
                // (formula.weight(good) + formula.weight(worse))
            )
            assert w3.eth.get_balance(keys[0].address) > before + expected - 10**15  # less gas
            assert errors == []
        finally:
            await browser.close()
