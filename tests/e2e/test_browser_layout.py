"""The page on a phone (390×844) and a laptop (1280×800), in real headless Chromium: every
control reachable, the beat follows the metre, REC shows while recording, channel strips keep
their state through joins, the event socket reconnects, five joins and leaves leave no timer
running, no console errors. Screenshots of each view go to the test's folder."""

from __future__ import annotations

import asyncio
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import soundfile
from playwright.async_api import Page, async_playwright

from client.session import ArraySink, ArraySource, JamClient
from node.app import Node
from tests.conftest import node_config, tone
from tests.e2e.test_browser import CHROMIUM, chromium_args, poll

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]
SIZES = {"phone": (390, 844), "laptop": (1280, 800)}

UNREACHABLE = """() => {
  const width = window.innerWidth;
  const out = [];
  for (const el of document.querySelectorAll("button, input, select, canvas, a, textarea")) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest("[hidden]")) continue;
    if (getComputedStyle(el).visibility === "hidden") continue;
    const name = `${el.tagName}#${el.id || el.className}`;
    if (r.left < -1 || r.right > width + 1) out.push(`${name} ${r.left}-${r.right}`);
  }
  return out;
}"""
UNLABELLED = """() => [...document.querySelectorAll("input, select, button")].filter((el) => {
  if (el.closest("[hidden]") || el.type === "hidden" || !el.getClientRects().length) return false;
  if (el.tagName === "BUTTON") return !el.textContent.trim() && !el.getAttribute("aria-label");
  return !el.getAttribute("aria-label") && !el.closest("label") && !el.placeholder;
}).map((el) => el.outerHTML.slice(0, 80))"""


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
}"""


async def check_view(page: Page, shots: Path, name: str) -> None:
    width = (page.viewport_size or {"width": 0})["width"]
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width + 1, f"{name}: the page is {overflow} px wide in a {width} px window"
    assert await page.evaluate(UNREACHABLE) == [], f"{name}: controls off-screen"
    assert await page.evaluate(UNLABELLED) == [], f"{name}: unlabelled controls"
    assert AXE.is_file(), "axe-core is missing: run `make install-test` (npm ci)"
    if not await page.evaluate("typeof axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    assert await page.evaluate(AXE_RUN) == [], f"{name}: serious accessibility violations"
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("size", sorted(SIZES))
async def test_every_view_is_usable_at_both_sizes(
    tmp_path: Path, account_factory: Any, size: str
) -> None:
    config = node_config(tmp_path / "data", chain={"mode": "devnet", "devnet_port": 0})
    async with Node(config) as node:
        await _views(node, tmp_path, account_factory, size)


async def _views(node: Node, tmp_path: Path, account_factory: Any, size: str) -> None:
    assert os.access(CHROMIUM, os.X_OK), "Debian chromium is not installed: run `make install-test`"
    shots = tmp_path / "screens"
    shots.mkdir()
    print(f"screenshots: {shots}")
    wav = tmp_path / "capture.wav"
    soundfile.write(str(wav), tone(660, 10), 48000)
    width, height = SIZES[size]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(node.url)
            await page.wait_for_function("window.jamnet && window.jamnet.address")
            await check_view(page, shots, f"{size}-lobby")
            # A 3/4 session: three beat dots; the room fits the window.
            await page.fill("#create-form input[name=time_signature]", "3/4")
            await page.click("#create-form button")
            await page.wait_for_function("window.jamnet.participant !== null", timeout=20000)
            sid = await page.evaluate("window.jamnet.session.id")
            assert await page.locator("#beat i").count() == 3
            # My input gain reaches the node's mixer (in everyone's mix).
            await page.fill("#input-gain", "-6")
            await page.dispatch_event("#input-gain", "input")
            assert node.service is not None
            pid = await page.evaluate("window.jamnet.participant.id")
            slot = node.service.get(sid).participants[pid].slot
            mixer = node.service.mixers()[sid]
            await poll(lambda: _close(float(mixer.input_gain[slot]), 0.501), timeout_s=10)
            assert await page.inner_text("#input-gain-db") == "-6.0 dB"
            # The facing readout is right from the start; the keyboard moves as well as turns.
            yaw = await page.evaluate("window.jamnet.yaw")
            assert await page.inner_text("#facing") == f"facing: {yaw:g}° · pitch 0°"
            me = "window.jamnet.participants.get(window.jamnet.participant.id)"
            x0 = await page.evaluate(f"{me}.x")
            await page.focus("#stage")
            await page.keyboard.press("d")
            await page.wait_for_function(
                f"Math.abs({me}.x - ({x0} + 0.5)) < 0.011 || {me}.x === 10"
            )
            async with (
                JamClient(node.url, account_factory(), "ana") as ana,
                JamClient(node.url, account_factory(), "ben") as ben,
            ):
                await ana.join(sid)
                await ana.connect(ArraySource(tone(440, 30), loop=True), ArraySink())
                ana_id = ana.participant["id"]
                strip = f"#participants li[data-id='{ana_id}']"
                await page.wait_for_selector(f"{strip} input.gain")
                await page.fill(f"{strip} input.gain", "-6")
                await page.dispatch_event(f"{strip} input.gain", "input")
                await page.check(f"{strip} .muted input")
                assert await page.inner_text(f"{strip} .db") == "-6.0 dB"
                # Another musician joins: ana's strip keeps its fader and mute.
                await ben.join(sid)
                await page.wait_for_selector(f"#participants li[data-id='{ben.participant['id']}']")
                assert await page.input_value(f"{strip} input.gain") == "-6"
                assert await page.is_checked(f"{strip} .muted input")
                assert await page.inner_text(f"{strip} .db") == "-6.0 dB"
                # Recording: REC and a running timer.
                await page.click("#record")
                await page.wait_for_selector("#rec:not([hidden])")
                await poll(lambda: _text_is_not(page, "#rec-time", "0:00"), timeout_s=10)
                await check_view(page, shots, f"{size}-room")
                await page.click("#record")
                await page.wait_for_selector("#rec", state="hidden")
                # The event socket drops: the page reconnects and resynchronises.
                await page.evaluate("window.jamnet.ws.close()")
                await page.wait_for_function(
                    "window.jamnet.ws && window.jamnet.ws.readyState === 1", timeout=20000
                )
                await ana.leave()
                await page.wait_for_selector(strip, state="detached", timeout=20000)
            await page.click("#tabs button[data-view=works]")
            await page.wait_for_selector("#takes li[data-id] a.mix")  # the session's take, listed
            # The mix and a stem download (for this session's participants only).
            for selector in ("#takes a.mix", "#takes a.stem"):
                head = await page.evaluate(
                    """async (sel) => {
                      const a = document.querySelector(sel);
                      const r = await fetch(a.href);
                      const b = new Uint8Array(await r.arrayBuffer());
                      return [r.status, String.fromCharCode(...b.slice(0, 4)),
                              String.fromCharCode(...b.slice(8, 12)), b.length];
                    }""",
                    selector,
                )
                assert head[:3] == [200, "RIFF", "WAVE"] and head[3] > 44, head
            await page.click("#takes button.play-take")  # the take plays in the page's player
            await page.wait_for_function(
                "document.querySelector('#player').currentTime > 0.2", timeout=15000
            )
            href = await page.evaluate("document.querySelector('#takes a.mix').href")
            stranger = re.sub(r"token=[^&]*", "token=nope", href)
            with pytest.raises(urllib.error.HTTPError) as refused:
                await asyncio.to_thread(urllib.request.urlopen, stranger)
            assert refused.value.code == 403
            await page.click("#takes button.open-take")
            await page.wait_for_selector("#take-draft tr[data-address]")
            await check_view(page, shots, f"{size}-works")
            await page.click("#tabs button[data-view=governance]")
            await page.wait_for_selector("#gov-tools:not([hidden])")
            await check_view(page, shots, f"{size}-governance")
            await page.click("#tabs button[data-view=play]")
            # Five joins and leaves leave no room timer running.
            running = await page.evaluate("window.jamnetRoomTimers()")
            assert running > 0
            await page.click("#leave")
            await page.wait_for_selector("#lobby", state="visible")
            assert await page.evaluate("window.jamnetRoomTimers()") == 0
            for _ in range(5):
                await page.fill("#join-form input[name=session]", sid)
                await page.click("#join-form button")
                await page.wait_for_function("window.jamnet.participant !== null", timeout=20000)
                await page.wait_for_function(f"window.jamnetRoomTimers() === {running}")
                await page.click("#leave")
                await page.wait_for_selector("#lobby", state="visible")
            assert await page.evaluate("window.jamnetRoomTimers()") == 0
            assert errors == [], errors
        finally:
            await browser.close()


async def _text_is_not(page: Page, selector: str, text: str) -> bool:
    return (await page.inner_text(selector)) != text


async def _close(value: float, expected: float) -> bool:
    return abs(value - expected) < 1e-3
