"""An exclusive-licence auction in headless Chromium: the page's key is a work's lead
contributor; it opens the auction, bids sealed (value and salt kept in the browser), reveals,
settles at the second price against a bidder outside the page, and withdraws its refund."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from playwright.async_api import async_playwright
from web3 import Web3
from web3.logs import DISCARD

from node.app import Node
from node.chain.consent import Registration, consent_message, provenance_message
from node.chain.licences import commitment, new_salt
from tests.conftest import node_config
from tests.e2e.test_browser import CHROMIUM, poll
from tests.e2e.test_browser_gov import advance
from tests.e2e.test_browser_works import status

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ETH = 10**18


async def test_the_page_auctions_an_exclusive_licence(tmp_path: Path) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node, async_playwright() as pw:
        chain = node.chain
        assert chain is not None and chain.w3 is not None and chain.account is not None
        w3: Web3 = chain.w3
        c = chain.deployment.contracts(w3)  # type: ignore[union-attr]
        works, licensing = c["WorkRegistry"], c["Licensing"]
        await chain.register_devnet_node("12D3KooWAuction", "http://127.0.0.1:1")
        artist = Account.create()
        await chain.faucet(artist.address)
        registrant, rival = w3.eth.accounts[1], w3.eth.accounts[3]
        content = bytes(Web3.keccak(text="auctioned in the page"))
        reg = Registration(
            content,
            "u",
            [artist.address, registrant],
            [7000, 3000],
            2**40,
            1,
            chain.account.address,
        )
        chain_id = w3.eth.chain_id
        consent = artist.sign_message(consent_message(chain_id, works.address, reg, registrant))
        proof = chain.account.sign_message(
            provenance_message(chain_id, works.address, content, reg.contributors)
        )
        tx = works.functions.register(
            reg.as_tuple(), [bytes(consent.signature), b""], bytes(proof.signature)
        )
        receipt = w3.eth.wait_for_transaction_receipt(tx.transact({"from": registrant}))
        work = works.events.WorkRegistered().process_receipt(receipt, errors=DISCARD)[0]["args"][
            "workId"
        ]

        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.add_init_script(
                f"localStorage.setItem('jamnet.key', '{artist.key.to_0x_hex()}')"
            )
            await page.goto(node.url)
            await page.wait_for_function(
                f"window.jamnet && window.jamnet.address === '{artist.address}'"
            )
            await page.click("#tabs button[data-view=works]")
            await page.fill("#lookup-id", str(work))  # registered on chain, not by this node
            await page.click("#lookup-work")
            item = f"#work-list li[data-work='{work}']"
            await page.wait_for_selector(f"{item} button.create-auction")
            await page.select_option(f"{item} select.auction-usage", "advert")
            await page.fill(f"{item} input.auction-reserve", "0.1")
            await page.fill(f"{item} input.auction-hours", "1")
            await page.click(f"{item} button.create-auction")
            await status(page, "auction of an exclusive advert licence")
            row = f"{item} .auction[data-auction='0']"
            await page.fill(f"{row} input.bid-value", "0.3")
            await page.fill(f"{row} input.bid-deposit", "0.5")
            await page.click(f"{row} button.bid")
            await status(page, "sealed bid on auction 0")
            salt = new_salt()
            send = licensing.functions.commit(0, commitment(0, rival, ETH // 5, salt))
            w3.eth.wait_for_transaction_receipt(send.transact({"from": rival, "value": ETH // 5}))
            advance(w3, 3601)
            await page.evaluate("refreshWorks()")
            await page.click(f"{row} button.reveal")
            await status(page, "revealed your bid of 0.3 ETH")
            w3.eth.wait_for_transaction_receipt(
                licensing.functions.reveal(0, ETH // 5, salt).transact({"from": rival})
            )
            advance(w3, 3601)
            await page.evaluate("refreshWorks()")
            await page.click(f"{row} button.settle")
            await status(page, "auction 0 settled")
            await page.wait_for_function(
                f"document.querySelector(\"{row}\").textContent.includes('won by you at 0.2 ETH')"
            )
            before = w3.eth.get_balance(artist.address)
            await page.click("#refunds button.withdraw-refunds")
            await status(page, "withdrew 0.3 ETH of refunds")

            async def refunded() -> bool:
                return w3.eth.get_balance(artist.address) > before + ETH * 29 // 100

            await poll(refunded)
            assert licensing.functions.refundOf(rival).call() == ETH // 5
            record, valid = licensing.functions.verify(0).call()
            assert valid and record[1] == artist.address and record[4] is True
            assert errors == []
        finally:
            await browser.close()
