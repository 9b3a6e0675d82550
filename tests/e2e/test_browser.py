"""A real headless Chromium joins with a fake WAV capture and hears its mix."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from playwright.async_api import async_playwright

from client.session import ArraySink, ArraySource, JamClient
from node.app import Node
from tests.conftest import tone

CHROMIUM = "/usr/bin/chromium"


def chromium_args(capture_wav: Path) -> list[str]:
    """Headless Chromium with a fake microphone playing ``capture_wav``."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={capture_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]


pytestmark = [pytest.mark.slow, pytest.mark.browser]


async def poll(predicate, timeout_s: float = 20.0, every_s: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(every_s)


async def test_browser_joins_sends_and_hears(node: Node, tmp_path: Path, account_factory) -> None:  # type: ignore[no-untyped-def]
    assert os.access(CHROMIUM, os.X_OK), "Debian chromium is not installed: run `make install-test`"
    wav = tmp_path / "capture.wav"
    soundfile.write(str(wav), tone(660, 10), 48000)
    assert node.service is not None
    async with JamClient(node.url, account_factory(), "cli") as cli:
        session = await cli.create_session("browser test")
        await cli.join(session["id"])
        await cli.connect(ArraySource(tone(440, 30), loop=True), ArraySink())
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
            try:
                page = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(node.url)
                await page.wait_for_function("window.jamnet && window.jamnet.address")
                await page.fill("#join-form input[name=session]", session["id"])
                await page.fill("#join-form input[name=display]", "browser")
                await page.click("#join-form button")
                await page.wait_for_function("window.jamnet.participant !== null", timeout=15000)
                browser_id = await page.evaluate("window.jamnet.participant.id")
                mixer = node.service.mixers()[session["id"]]

                async def node_hears_browser() -> bool:
                    for slot in mixer.slots:
                        if slot is not None and slot.key == browser_id:
                            return (
                                slot.jitter.stats.played > 50
                                and mixer.levels[
                                    [s.key if s else None for s in mixer.slots].index(browser_id)
                                ]
                                > 0.01
                            )
                    return False

                await poll(node_hears_browser)
                # The browser's own WebAudio analyser sees the CLI's tone in its mix.
                level = await poll(
                    lambda: page.evaluate(
                        "window.jamnet.mixLevel > 0.01 ? window.jamnet.mixLevel : 0"
                    )
                )
                assert level > 0.01
                # The web page shows the other participant and beats once a click is on.
                await page.check("#click")
                await page.wait_for_function("window.jamnet.lastBeat !== undefined", timeout=10000)
                # Arrow keys turn the listener; the node's mixer gets the new facing.
                before = await page.evaluate("window.jamnet.yaw")
                await page.keyboard.press("ArrowRight")
                expected = (before + 15 + 180) % 360 - 180
                me = node.service.get(session["id"]).participants[browser_id]

                async def mixer_has_new_yaw() -> bool:
                    # The API records it at once; the mix thread applies it at its next tick.
                    return (
                        abs(me.yaw_deg - expected) < 0.2
                        and abs(float(mixer.orientations[me.slot, 0]) - expected) < 0.2
                    )

                await poll(mixer_has_new_yaw)
                names = await page.locator("#participants li").all_inner_texts()
                assert any("cli" in n for n in names) and any("browser" in n for n in names)
                assert not errors, errors
                # Closing the tab says no goodbye the node waits for: the browser leaves
                # every mix, the participant list and the lobby.
                session_view = node.service.get(session["id"])
                await page.close()

                async def browser_gone() -> bool:
                    # Out of the list, and (from the mix thread's next tick) out of the mix.
                    return browser_id not in session_view.participants and all(
                        s.key != browser_id for s in mixer.slots if s is not None
                    )

                await poll(browser_gone, timeout_s=30)
                assert [p.name for p in session_view.participants.values()] == ["cli"]
            finally:
                await browser.close()
    assert np.isfinite(level)


# The page's AudioWorklet cannot load the WebAssembly decoder (worklet module requests are
# not routed through Playwright, so the test fails them where the page asks for them).
NO_DECODER_BUNDLE = """
const addModule = AudioWorklet.prototype.addModule;
AudioWorklet.prototype.addModule = function (url, options) {
  if (String(url).endsWith("/vendor/opus-decoder.js")) {
    return Promise.reject(new DOMException("the test took the decoder away", "NetworkError"));
  }
  return addModule.call(this, url, options);
};
"""


@pytest.mark.parametrize(
    ("transport", "frame_ms", "mode", "decoder"),
    [
        ("datachannel", 5, "worker", "wasm"),
        # The fallbacks, in the same Chromium with the feature taken away: no workers (so
        # the data channel stays on the main thread), no WebAssembly decoder (WebCodecs).
        ("datachannel", 10, "page", "webcodecs"),
        ("datachannel", 10, "worker", "webcodecs"),
        ("rtp", 10, None, None),
    ],
)
async def test_both_audio_paths_at_the_sessions_frame_size_with_a_truthful_readout(
    node: Node,
    tmp_path: Path,
    account_factory,
    transport: str,
    frame_ms: int,
    mode: str | None,
    decoder: str | None,
) -> None:  # type: ignore[no-untyped-def]
    """The page creates a session at ``frame_ms``; over either path it sends packets of that
    size (the node reads each packet's duration), hears the CLI's tone, and shows a latency
    estimate whose parts are all there and plausible. The data-channel path runs in the
    worker ``mode`` and plays what ``decoder`` decoded."""
    wav = tmp_path / "capture.wav"
    soundfile.write(str(wav), tone(660, 10), 48000)
    assert node.service is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            if mode == "page":
                await page.add_init_script("delete window.Worker;")
            if decoder == "webcodecs":
                await page.add_init_script(NO_DECODER_BUNDLE)
            await page.goto(f"{node.url}?transport={transport}")
            await page.wait_for_function("window.jamnet && window.jamnet.address")
            await page.select_option("#frame-ms", str(frame_ms))
            await page.fill("#create-form input[name=display]", "browser")
            await page.click("#create-form button")
            await page.wait_for_function("window.jamnet.mixSource", timeout=15000)
            assert await page.evaluate("window.jamnet.transport") == transport
            if transport == "datachannel":
                # By default off the main thread (the channel was handed to the audio
                # worker), and the playout worklet decodes with its own WebAssembly libopus.
                assert await page.evaluate("window.jamnet.dc.mode") == mode
                await poll(
                    lambda: page.evaluate(
                        "window.jamnet.dc.stats.playout"
                        f" && window.jamnet.dc.stats.playout.decoder === '{decoder}'"
                    )
                )
            session_id = await page.evaluate("window.jamnet.session.id")
            assert node.service.get(session_id).settings.frame_ms == frame_ms
            browser_id = await page.evaluate("window.jamnet.participant.id")
            async with JamClient(node.url, account_factory(), "cli") as cli:
                await cli.join(session_id)
                await cli.connect(ArraySource(tone(440, 30), loop=True), ArraySink())
                mixer = node.service.mixer(session_id)

                async def node_hears_browser_at_frame_size() -> bool:
                    slot = next((s for s in mixer.slots if s and s.key == browser_id), None)
                    return bool(
                        slot is not None
                        and slot.jitter.stats.played > 50
                        and round(slot.jitter.frame_s * 1000) == frame_ms
                    )

                await poll(node_hears_browser_at_frame_size)
                await poll(lambda: page.evaluate("window.jamnet.mixLevel > 0.01"))
                if transport == "datachannel":
                    counts = await page.evaluate(
                        "[window.jamnet.dc.stats.decodeErrors,"
                        " window.jamnet.dc.stats.playout.decodeErrors]"
                    )
                    assert counts == [0, 0], "every packet of the mix decoded"
                readout = await poll(
                    lambda: page.evaluate(
                        "window.jamnet.latency && window.jamnet.latency.measured.node "
                        "&& window.jamnet.latency.measured.browser ? window.jamnet.latency : null"
                    )
                )
                parts = readout["parts_ms"]
                assert set(parts) == {"capture", "network", "node", "browser", "output"}
                assert all(v >= 0 for v in parts.values())
                assert parts["capture"] >= frame_ms, "a packet's wait to be complete at least"
                assert readout["dominant"] in parts
                assert readout["total_ms"] == pytest.approx(sum(parts.values()))
                assert 5 < readout["total_ms"] < 2000
                text = await page.inner_text("#latency")
                assert "dominates" in text and "mouth to ear" in text
            assert not errors, errors
        finally:
            await browser.close()
