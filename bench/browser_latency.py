"""Browser to browser: two real headless Chromium pages jam through one node.

Both pages' fake microphones play a click train (a 5 ms burst every 250 ms, cycling through
four pitches, so an onset's pitch names its click for latencies up to a second). AudioWorklet
taps in each page find click onsets in its own microphone (the "mouth": the moment the page's
audio graph processed the captured sample) and in the mix it plays (the "ear": when that
sample reaches the output, from ``AudioContext.getOutputTimestamp``). Both pages run in one
browser on one machine, so their ``performance.timeOrigin + now()`` share a clock.

For each frame size it prints ``b2b_ms_p50`` / ``p99`` (both directions), Chromium's receive
buffer (``jitterBufferDelay / jitterBufferEmittedCount``), the packet time Chromium actually
sends when the node's answer asks for the session's frame size (``a=ptime``, measured by the
node from each packet), the node-added time for the browsers' streams, and each page's own
latency readout (to check the estimate it shows). Prints progress to stderr and one JSON
object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clicks import percentile
from bench.machine import StealMeter, bench_node_config, cpu_seconds

CHROMIUM = "/usr/bin/chromium"
CLICK_EVERY_S = 0.25
CLICK_FREQS = (1000.0, 1500.0, 2000.0, 2500.0)
RATE = 48000


def chromium_args(capture_wav: Path) -> list[str]:
    """Headless Chromium with a fake microphone playing ``capture_wav`` (the tests' flags)."""
    from tests.e2e.test_browser import chromium_args as flags

    return flags(capture_wav)


def click_train(path: Path) -> None:
    """One second of clicks (four pitches), looped by Chromium's fake capture device."""
    import soundfile

    audio = np.zeros(RATE, dtype=np.float32)
    n = 240
    t = np.arange(n) / RATE
    for k, freq in enumerate(CLICK_FREQS):
        start = int(k * CLICK_EVERY_S * RATE)
        audio[start : start + n] = 0.8 * np.sin(2 * math.pi * freq * t) * np.hanning(n)
    soundfile.write(str(path), audio, RATE, subtype="FLOAT")


# Runs in each page once it has joined: taps on the microphone and on the mix it hears.
TAP_JS = """
async () => {
  const st = window.jamnet;
  const ctx = st.audioCtx;
  const code = `class Tap extends AudioWorkletProcessor {
    constructor() { super(); this.last = -1e9; this.pending = null; }
    process(inputs) {
      const ch = inputs[0] && inputs[0][0];
      if (!ch) return true;
      for (let i = 0; i < ch.length; i++) {
        const frame = currentFrame + i;
        if (this.pending) {
          this.pending.samples.push(ch[i]);
          if (this.pending.samples.length >= 240) {
            this.port.postMessage(this.pending); this.pending = null;
          }
        } else if (Math.abs(ch[i]) > 0.05 && frame - this.last > 4800) {
          this.last = frame; this.pending = { frame, samples: [ch[i]] };
        }
      }
      return true;
    }
  }
  registerProcessor('jamnet-tap', Tap);`;
  const url = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
  await ctx.audioWorklet.addModule(url);
  const freqs = [1000, 1500, 2000, 2500];
  const pitch = (samples) => {
    let best = 0, bestPower = -1;
    freqs.forEach((f, k) => {
      let re = 0, im = 0;
      samples.forEach((v, n) => { re += v * Math.cos(2 * Math.PI * f * n / 48000);
                                  im -= v * Math.sin(2 * Math.PI * f * n / 48000); });
      if (re * re + im * im > bestPower) { bestPower = re * re + im * im; best = k; }
    });
    return best;
  };
  const taps = { mic: [], mix: [] };
  window.jamnetTaps = taps;
  const outputLatency = () => (ctx.outputLatency || 0) + (ctx.baseLatency || 0);
  const attach = (source, label) => {
    const node = new AudioWorkletNode(ctx, "jamnet-tap");
    const sink = ctx.createGain(); sink.gain.value = 0;
    source.connect(node); node.connect(sink).connect(ctx.destination);
    node.port.onmessage = (ev) => {
      const ts = ctx.getOutputTimestamp();
      const contextTime = ev.data.frame / ctx.sampleRate;
      // When that sample reaches the output, on the shared clock (epoch ms).
      const out = performance.timeOrigin + ts.performanceTime
        + (contextTime - ts.contextTime) * 1000;
      // The microphone's sample was processed one output latency before it would play.
      const at = label === "mic" ? out - outputLatency() * 1000 : out;
      taps[label].push([at, pitch(ev.data.samples)]);
    };
  };
  attach(ctx.createMediaStreamSource(st.stream), "mic");
  attach(st.mixSource, "mix");   // the node carrying the mix the page plays (either path)
  return true;
}
"""

STATS_JS = """
async () => {
  const st = window.jamnet;
  const stats = await st.pc.getStats();
  let inbound = null;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s; });
  const [receiver] = st.pc.getReceivers();
  return {
    jitterBufferDelay: inbound ? inbound.jitterBufferDelay : null,
    jitterBufferEmittedCount: inbound ? inbound.jitterBufferEmittedCount : null,
    jitterBufferTargetDelay: inbound ? inbound.jitterBufferTargetDelay : null,
    concealedSamples: inbound ? inbound.concealedSamples : null,
    totalSamplesReceived: inbound ? inbound.totalSamplesReceived : null,
    jitterBufferTarget: receiver ? receiver.jitterBufferTarget : null,
    readout: st.latency || null,
    playout: st.dc && st.dc.stats.playout ? { ...st.dc.stats.playout } : null,
  };
}
"""


def b2b(mouths: list[list[float]], ears: list[list[float]], since: float) -> list[float]:
    """Latencies (ms) of clicks captured in one page (``mouths``) heard in the other."""
    out = []
    for ear, pitch in ears:
        candidates = [t for t, p in mouths if p == pitch and t < ear]
        if candidates and candidates[-1] > since:
            latency = ear - candidates[-1]
            if latency < 4 * CLICK_EVERY_S * 1000:
                out.append(latency)
    return out


async def open_duo(
    url: str, frame_ms: int, browser: Any, transport: str = "datachannel"
) -> tuple[Any, Any, str]:
    """Page A creates a session at ``frame_ms`` and joins; page B joins it. Both tapped."""
    pages = []
    for _ in ("A", "B"):
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{url}?transport={transport}")
        await page.wait_for_function("window.jamnet && window.jamnet.address")
        pages.append(page)
    a, b = pages
    await a.fill("#create-form input[name=name]", "browser latency")
    await a.select_option("#frame-ms", str(frame_ms))
    await a.fill("#create-form input[name=display]", "A")
    await a.click("#create-form button")
    await a.wait_for_function("window.jamnet.participant !== null", timeout=30000)
    session_id = await a.evaluate("window.jamnet.session.id")
    await b.fill("#join-form input[name=session]", session_id)
    await b.fill("#join-form input[name=display]", "B")
    await b.click("#join-form button")
    await b.wait_for_function("window.jamnet.participant !== null", timeout=30000)
    for page in pages:
        await page.wait_for_function("window.jamnet.mixSource", timeout=30000)
        used = await page.evaluate("window.jamnet.transport")
        assert used == transport, f"the page chose {used}, not {transport}"
        await page.evaluate(TAP_JS)
    return a, b, session_id


async def collect(a: Any, b: Any, seconds: float, warmup_s: float = 3.0) -> dict[str, Any]:
    """Measure for ``seconds`` after a warm-up; b2b both ways and Chromium's receive buffer."""
    await asyncio.sleep(warmup_s)
    since = await a.evaluate("performance.timeOrigin + performance.now()")
    before = [await page.evaluate(STATS_JS) for page in (a, b)]
    await asyncio.sleep(seconds)
    after = [await page.evaluate(STATS_JS) for page in (a, b)]
    taps = [await page.evaluate("window.jamnetTaps") for page in (a, b)]
    latencies = b2b(taps[0]["mic"], taps[1]["mix"], since) + b2b(
        taps[1]["mic"], taps[0]["mix"], since
    )
    buffers = []
    for one, two in zip(before, after, strict=True):
        emitted = (two["jitterBufferEmittedCount"] or 0) - (one["jitterBufferEmittedCount"] or 0)
        if emitted > 0:
            buffers.append(1000 * (two["jitterBufferDelay"] - one["jitterBufferDelay"]) / emitted)
    readouts = [s["readout"] for s in after]
    playout = {"played": 0, "underrun": 0, "late": 0, "wait_ms": []}
    for one, two in zip(before, after, strict=True):
        if one["playout"] and two["playout"]:  # the data-channel path's own playout buffer
            for key in ("played", "underrun", "late"):
                playout[key] += two["playout"][key] - one["playout"][key]
            playout["wait_ms"].append(round(two["playout"]["wait_ms"], 1))
    return {
        "playout": playout,
        "b2b_ms": latencies,
        "browser_buffer_ms": [round(v, 1) for v in buffers],
        "jitter_buffer_target": [s["jitterBufferTarget"] for s in after],
        "readouts": readouts,
    }


async def measure(
    frame_ms: int, seconds: float, trials: int, transport: str = "datachannel"
) -> dict[str, Any]:
    """Fresh node and browser pages per trial (each draws new clock phases)."""
    from playwright.async_api import async_playwright

    from node.app import Node

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clicks.wav"
        click_train(wav)
        async with async_playwright() as pw:
            for trial in range(trials):
                print(f"  {transport}, {frame_ms} ms: trial {trial + 1}/{trials}", file=sys.stderr)
                config = bench_node_config(str(Path(tmp) / f"data{trial}"))
                node_added: list[float] = []
                async with Node(config) as node:
                    assert node.clock is not None
                    assert node.service is not None
                    browser = await pw.chromium.launch(
                        executable_path=CHROMIUM, args=chromium_args(wav)
                    )
                    try:
                        a, b, session_id = await open_duo(node.url, frame_ms, browser, transport)
                        cpu0 = cpu_seconds()
                        record = node_added.append
                        node.clock.latency_observers.append(lambda v, r=record: r(v * 1e3))
                        t0 = time.monotonic()
                        figures = await collect(a, b, seconds)
                        # This process is the node (the browsers are Chromium's own).
                        figures["node_cpu_pct"] = round(
                            100 * (cpu_seconds() - cpu0) / (time.monotonic() - t0), 1
                        )
                        mixer = node.service.mixer(session_id)
                        figures["packet_ms"] = sorted(
                            round(s.jitter.frame_s * 1000, 1) for s in mixer.slots if s
                        )
                        figures["node_added_ms_p50"] = round(percentile(node_added, 50), 1)
                    finally:
                        await browser.close()
                results.append(figures)
    latencies = [v for r in results for v in r["b2b_ms"]]
    played = sum(r["playout"]["played"] for r in results)
    readout_totals = [
        r["total_ms"] for trial in results for r in trial["readouts"] if r is not None
    ]
    return {
        "transport": transport,
        "frame_ms": frame_ms,
        "node_cpu_pct": statistics.median(r["node_cpu_pct"] for r in results),
        "clicks": len(latencies),
        "b2b_ms_p50": round(percentile(latencies, 50), 1),
        "b2b_ms_p99": round(percentile(latencies, 99), 1),
        "b2b_ms_trial_p50s": [round(percentile(r["b2b_ms"], 50), 1) for r in results],
        "browser_buffer_ms": [v for r in results for v in r["browser_buffer_ms"]],
        "packet_ms_sent_by_chromium": sorted({v for r in results for v in r["packet_ms"]}),
        "node_added_ms_p50": statistics.median(r["node_added_ms_p50"] for r in results),
        # The page's playout buffer (data-channel path): frames that began in silence, late
        # packets, and how long packets waited there (the last half second of each trial).
        "page_underrun_pct": round(100 * sum(r["playout"]["underrun"] for r in results) / played, 2)
        if played
        else None,
        "page_late": sum(r["playout"]["late"] for r in results),
        "page_wait_ms": [v for r in results for v in r["playout"]["wait_ms"]],
        "readout_total_ms_p50": round(statistics.median(readout_totals), 1)
        if readout_totals
        else None,
        "readout_example": next(
            (r for trial in results for r in trial["readouts"] if r is not None), None
        ),
    }


async def run_overload_chromium(
    url: str, args: argparse.Namespace, phases: Any, figures: Any
) -> dict[str, Any]:
    """For bench/overload.py: the duo is two Chromium pages on a node process at ``url``."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clicks.wav"
        click_train(wav)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
            try:
                a, b, _ = await open_duo(url, args.frame_ms, browser, args.transport)
                await asyncio.sleep(2.0)
                t_wall, t_mono = time.time() * 1000, time.monotonic()
                trace: list[dict[str, Any]] = []
                tracer = (
                    asyncio.create_task(_trace_pages(url, a, b, trace))
                    if getattr(args, "trace", False)
                    else None
                )
                ran = await phases(url, args)
                if tracer is not None:
                    tracer.cancel()
                taps = [await page.evaluate("window.jamnetTaps") for page in (a, b)]
            finally:
                await browser.close()

    def mono(epoch_ms: float) -> float:
        return t_mono + (epoch_ms - t_wall) / 1000

    samples = []
    for mouth_page, ear_page in ((0, 1), (1, 0)):
        mouths = taps[mouth_page]["mic"]
        for ear, pitch in taps[ear_page]["mix"]:
            candidates = [t for t, p in mouths if p == pitch and t < ear]
            if candidates and ear - candidates[-1] < 4 * CLICK_EVERY_S * 1000:
                samples.append((mono(candidates[-1]), ear - candidates[-1]))
    result: dict[str, Any] = figures(samples, ran)
    if getattr(args, "trace", False):
        from bench.overload import _timeline

        result["trace"] = _timeline(samples, trace, ran)
    return result


PAGE_FIGURES = """() => {
  const s = window.jamnet, p = s.dc && s.dc.stats.playout;
  return { parts: s.latency ? s.latency.parts_ms : null,
           target_ms: p ? p.target_ms : null, wait_ms: p ? p.wait_ms : null };
}"""


async def _trace_pages(url: str, a: Any, b: Any, out: list[dict[str, Any]]) -> None:
    """Every half second (``--trace``): each page's playout buffer and readout parts, and
    the node's jitter-buffer delays."""
    from bench.overload import metrics_text

    while True:
        await asyncio.sleep(0.5)
        text = await asyncio.to_thread(metrics_text, url)
        node = [round(float(line.rsplit(" ", 1)[1]), 1) for line in text.splitlines()
                if line.startswith("jamnet_jitter_delay_ms{")]  # fmt: skip
        fa, fb = await a.evaluate(PAGE_FIGURES), await b.evaluate(PAGE_FIGURES)
        out.append(
            {
                "t": time.monotonic(),
                "a_ms": fa["target_ms"],
                "b_ms": fb["target_ms"],
                "node_ms": node,
                "a_parts": {**(fa["parts"] or {}), "wait": fa["wait_ms"]},
                "b_parts": {**(fb["parts"] or {}), "wait": fb["wait_ms"]},
            }
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-ms", type=int, nargs="*", choices=(5, 10, 20), default=[5, 10, 20])
    parser.add_argument(
        "--transport", nargs="*", choices=("datachannel", "rtp"), default=["datachannel", "rtp"]
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured per trial")
    parser.add_argument("--trials", type=int, default=3, help="fresh node and pages each")
    args = parser.parse_args()
    steal = StealMeter()
    results = {}
    for transport in args.transport:
        for frame_ms in args.frame_ms:
            key = f"{transport}_{frame_ms}"
            results[key] = await measure(frame_ms, args.seconds, args.trials, transport)
            print(f"  {json.dumps(results[key])}", file=sys.stderr)
    summary = {
        **{f"b2b_ms_p50_{key}": r["b2b_ms_p50"] for key, r in results.items()},
        **{f"b2b_ms_p99_{key}": r["b2b_ms_p99"] for key, r in results.items()},
        "steal_pct": steal.percent(),
        "cases": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
