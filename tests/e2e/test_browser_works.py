"""The royalty loop in the page, in real headless Chromium: a take → its split (edited by the
owner) → consents → registered → played for 30 s in the page's player (a signed listen
receipt) → a settled period → earnings → a withdrawal to another address."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import soundfile
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from playwright.async_api import async_playwright
from web3 import Web3

from client.session import ArraySink, ArraySource, JamClient
from node.api.works import close_message
from node.app import Node
from node.chain.build import build
from tests.conftest import node_config, tone
from tests.e2e.test_browser import CHROMIUM, chromium_args, poll

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]
TAKE_S = 33.0
"""A play counts after 30 s: the take must be longer."""


async def test_take_to_withdrawal_in_the_page(tmp_path: Path) -> None:
    assert os.access(CHROMIUM, os.X_OK), "Debian chromium is not installed: run `make install-test`"
    wav = tmp_path / "capture.wav"
    soundfile.write(str(wav), tone(660, 10), 48000)
    config = node_config(
        tmp_path / "data",
        chain={"mode": "devnet", "devnet_port": 0, "spark_master": "local[2]"},
        ai={"enabled": False},
        p2p={"enabled": False},
    )
    owner, guest, cold = Account.create(), Account.create(), Account.create().address
    async with Node(config) as node, async_playwright() as pw:
        assert node.chain is not None and node.chain.w3 is not None
        w3 = node.chain.w3
        addresses = node.chain.info()["addresses"]
        for who in (owner.address, guest.address):
            await node.chain.faucet(who)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.add_init_script(
                f"localStorage.setItem('jamnet.key', '{owner.key.to_0x_hex()}')"
            )
            await page.goto(node.url)
            await page.wait_for_function(
                f"window.jamnet && window.jamnet.address === '{owner.address}'"
            )
            await page.click("#create-form button")
            await page.wait_for_function("window.jamnet.participant !== null", timeout=20000)
            sid = await page.evaluate("window.jamnet.session.id")
            async with JamClient(node.url, guest, "guest") as guest_client:
                await guest_client.join(sid)
                await guest_client.connect(ArraySource(0.5 * tone(440, 60), loop=True), ArraySink())
                await asyncio.sleep(2.0)
                # 1. The owner records in the page.
                await page.click("#record")
                await page.wait_for_function(
                    "document.querySelector('#record').textContent.includes('Stop')"
                )
                await asyncio.sleep(TAKE_S)
                await page.click("#record")
                await page.wait_for_function(
                    "document.querySelector('#record').textContent.includes('Start')"
                )
            # 2. The take, its proposed split, the owner's edit and consent, in the page.
            await page.click("#tabs button[data-view=works]")
            await poll(lambda: _sealed(page), timeout_s=30)
            await page.click("#takes button.open-take")
            await page.wait_for_selector("#take-draft tr[data-address]")
            rows = await page.locator("#take-draft tr[data-address]").count()
            assert rows == 2
            await page.fill(f"#take-draft tr[data-address='{owner.address}'] input.share", "60")
            await page.fill(f"#take-draft tr[data-address='{guest.address}'] input.share", "40")
            await page.click("#save-split")
            await page.wait_for_function(
                "window.jamnetWorks.draft"
                " && window.jamnetWorks.draft.split.some((e) => e.bps === 6000)"
            )
            await page.click("#consent")
            await page.wait_for_function(
                "window.jamnetWorks.draft.split"
                f".find((e) => e.address === '{owner.address}').consented"
            )
            # The guest consents from their own key (the CLI path signs the same typed data).
            assert node.works is not None
            recording = await page.evaluate("window.jamnetWorks.draft.recording_id")
            draft = node.works.public(recording)
            typed = draft["typed_data"]
            message = dict(typed["message"], deadline=int(typed["message"]["deadline"]),
                           nonce=int(typed["message"]["nonce"]))  # fmt: skip
            signed = guest.sign_message(
                encode_typed_data(full_message={**typed, "message": message})
            )
            await node.works.consent(recording, guest.address, "0x" + bytes(signed.signature).hex())

            async def registered() -> bool:
                await node.works.refresh()
                return node.works.public(recording)["state"] == "registered"

            await poll(registered, timeout_s=30)
            work = int(node.works.public(recording)["work_id"])
            # 3. Played for 30 s in the page's player: the receipt is signed and counted.
            await page.wait_for_selector(
                f"#work-list li[data-work='{work}'] button.play", timeout=20000
            )
            await page.click(f"#work-list li[data-work='{work}'] button.play")
            await page.wait_for_function("window.jamnetWorks.counted.length === 1", timeout=60000)
            assert node.listens is not None and node.listens.counts() == {work: 1}
            # 4. A sponsor funds the pool; the operator closes the period; it settles.
            pool = w3.eth.contract(address=addresses["RoyaltyPool"], abi=build()["RoyaltyPool"].abi)
            sponsor = w3.eth.accounts[3]
            w3.eth.wait_for_transaction_receipt(
                pool.functions.fund().transact({"from": sponsor, "value": Web3.to_wei(1, "ether")})
            )
            assert node.royalties is not None and node.chain.account is not None
            at = int(time.time())
            closing = node.chain.account.sign_message(encode_defunct(text=close_message(1, at)))
            async with JamClient(node.url, Account.create(), "operator") as operator:
                await operator.request(
                    "POST",
                    "/api/royalties/close",
                    {
                        "period": 1,
                        "signed_at": at,
                        "signature": "0x" + bytes(closing.signature).hex(),
                    },
                )

            async def settled() -> bool:
                return node.royalties.period(1)["state"] == "settled"  # type: ignore[union-attr]

            await poll(settled, timeout_s=180, every_s=0.5)
            # 5. A fan's payment from the page, earnings, and a withdrawal to another address.
            await page.evaluate("refreshWorks()")
            await page.fill(f"#work-list li[data-work='{work}'] input.pay-amount", "0.5")
            await page.click(f"#work-list li[data-work='{work}'] button.pay")
            await status(page, "paid")
            await page.wait_for_selector(f"#work-list li[data-work='{work}'] .earnings .period")
            text = await page.locator(f"#work-list li[data-work='{work}'] .earnings").inner_text()
            assert "60.00 %" in text and "period 1 (settled)" in text
            await page.fill(f"#work-list li[data-work='{work}'] input.withdraw-to", cold)
            await page.click(f"#work-list li[data-work='{work}'] button.withdraw")
            await status(page, "withdrawn")
            works = w3.eth.contract(
                address=addresses["WorkRegistry"], abi=build()["WorkRegistry"].abi
            )
            received = works.functions.work(work).call()[5]
            # The pool's 0.9 ETH (its 1 ETH less the operators' 10 %) + the fan's 0.5, less 2.5 %.
            assert received == Web3.to_wei(1.365, "ether")
            assert w3.eth.get_balance(cold) == received * 6000 // 10_000
            # 6. The owner, the lead contributor (60 %), offers a film licence in the page; the
            #    page buys one (for itself) and verifies the record on chain.
            item = f"#work-list li[data-work='{work}']"
            assert "an original work" in await page.locator(f"{item} .family").inner_text()
            await page.select_option(f"{item} select.offer-usage", "film")
            await page.fill(f"{item} input.offer-days", "30")
            await page.fill(f"{item} input.offer-territory", "fr")
            await page.fill(f"{item} input.offer-price", "0.05")
            await page.click(f"{item} button.offer-licence")
            await status(page, "offered a film licence")
            await page.wait_for_selector(f"{item} .terms button.buy-licence")
            assert "30 days, FR" in await page.locator(f"{item} .terms").inner_text()
            await page.click(f"{item} .terms button.buy-licence")
            await status(page, "licence 0 issued to you")
            await page.click("#verify-licence")
            await page.wait_for_function(
                "document.querySelector('#licence-result').textContent.includes('valid now')"
            )
            verified = await page.inner_text("#licence-result")
            assert f"film use of work {work} by {owner.address} in FR" in verified
            paid = works.functions.work(work).call()[5] - received
            assert paid == Web3.to_wei(0.05, "ether") * 9750 // 10_000  # into the split, less 2.5 %
            assert errors == []
        finally:
            await browser.close()


async def _sealed(page) -> bool:  # type: ignore[no-untyped-def]
    await page.evaluate("renderTakes()")
    return await page.locator("#takes button.open-take").count() == 1


async def status(page, prefix: str, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for the works view's status line to start with ``prefix`` (or say what went wrong)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await page.inner_text("#works-status")).startswith(prefix):
            return
        await asyncio.sleep(0.2)
    error = await page.inner_text("#error")
    shown = await page.inner_text("#works-status")
    raise AssertionError(f"works status is {shown!r}, not {prefix}…; error: {error!r}")
