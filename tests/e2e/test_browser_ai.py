"""The owner adds the AI bandmate from the web page and hears it in the page's own mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from playwright.async_api import async_playwright

from node.app import Node
from tests.conftest import node_config
from tests.e2e.test_browser import CHROMIUM, chromium_args, poll

pytestmark = [pytest.mark.slow, pytest.mark.browser]


async def test_the_owner_adds_a_bandmate_from_the_page(tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    soundfile.write(str(silence), np.zeros(48000 * 5, np.float32), 48000)
    config = node_config(
        tmp_path / "data", ai={"enabled": True}, chain={"mode": "devnet", "devnet_port": 0}
    )
    async with Node(config) as node, async_playwright() as pw:
        assert node.ai is not None
        await node.ai.ready()
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(silence))
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(node.url)
            await page.wait_for_function("window.jamnet && window.jamnet.address")
            await page.fill("#create-form input[name=name]", "page with a bandmate")
            await page.fill("#create-form input[name=tempo_bpm]", "132")
            await page.click("#create-form button")
            await page.wait_for_function("window.jamnet.participant !== null", timeout=15000)
            await page.wait_for_selector("#owner-tools:not([hidden])")
            await page.fill("#chords", "C Am Dm G")
            await page.dispatch_event("#chords", "change")
            await page.wait_for_function("window.jamnet.session.chords === 'C Am Dm G'")
            await page.select_option("#ai-instrument", "pluck")
            await page.click("#ai-toggle")
            await page.wait_for_function(
                "document.querySelector('#ai-toggle').textContent === 'Remove bandmate'"
            )
            names = await page.eval_on_selector_all(
                "#participants li span", "els => els.map(e => e.textContent)"
            )
            assert any(n.startswith("AI bandmate (pluck)") for n in names), names
            session_id = await page.evaluate("window.jamnet.session.id")
            assert node.service is not None
            assert node.service.get(session_id).settings.chords == ("C", "Am", "Dm", "G")
            # The page's WebAudio analyser hears the bandmate in its mix (its mic is silent).
            level = await poll(
                lambda: page.evaluate(
                    "window.jamnet.mixLevel > 0.003 ? window.jamnet.mixLevel : 0"
                ),
                timeout_s=30.0,
            )
            assert level > 0.003
            await page.click("#ai-toggle")
            await page.wait_for_function(
                "document.querySelector('#ai-toggle').textContent === 'Add bandmate'"
            )
            assert node.service.get(session_id).bandmate is None
            # Seeded from a registered work (the node keeps the melodies of those it registered):
            # the bandmate plays over the work's harmony and the session derives from the work.
            assert node.works is not None
            node.works.lineage.save(0, [[57, 60, 64, 57, 62, 65, 69, 62, 64, 67, 71, 64, 57]])
            await page.fill("#ai-work", "0")
            await page.click("#ai-toggle")
            await page.wait_for_function(
                "document.querySelector('#ai-status').textContent.includes('over work 0')"
            )
            status = await page.inner_text("#ai-status")
            assert "Am: Am Dm Em Am" in status, status
            assert node.service.get(session_id).settings.chords == ("Am", "Dm", "Em", "Am")
            assert node.works.lineage.parents_for(session_id) == [0]
            assert not errors, errors
            assert await page.evaluate("document.querySelector('#error').textContent") == ""
        finally:
            await browser.close()
