// node --test client/web/test: the page's playout worklet (playout-worklet.js), run as the
// browser runs it (one process() per 128-sample render quantum), with packets arriving on a
// simulated audio clock.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";

const RATE = 48000;
const QUANTUM = 128;
const SOURCE = readFileSync(new URL("../playout-worklet.js", import.meta.url), "utf8");

// The worklet global scope: what an AudioWorkletGlobalScope gives a processor.
function load() {
  const scope = {
    currentFrame: 0,
    registered: null,
    AudioWorkletProcessor: class { constructor() { this.port = { postMessage() {}, onmessage: null }; } },
    registerProcessor(name, cls) { scope.registered = cls; },
  };
  vm.createContext(scope);
  vm.runInContext(SOURCE, scope);
  return scope;
}

// Plays `seconds` of a 10 ms stream whose packet k arrives at k * frame + lag(k) samples (the
// media clock runs `transit` behind); returns the target after each quantum, in ms. The audio
// device renders `burst` quanta per callback, back to back (Chromium's output renders 10 ms
// per callback: four quanta), and packets are handed over between callbacks.
function play(seconds, lagMs, frameMs = 10, burst = 1) {
  const scope = load();
  const frame = (RATE * frameMs) / 1000;
  const node = new scope.registered({ processorOptions: { frameSamples: frame } });
  const transit = 2000;
  const arrivals = [];
  const total = Math.floor((seconds * 1000) / frameMs);
  for (let k = 0; k < total; k++) arrivals.push([k * frame + transit + Math.round((lagMs(k * frameMs / 1000) * RATE) / 1000), k]);
  arrivals.sort((a, b) => a[0] - b[0]);
  const left = new Float32Array(QUANTUM), right = new Float32Array(QUANTUM);
  const targets = [];
  let next = 0;
  for (let now = 0; now < seconds * RATE; now += QUANTUM) {
    scope.currentFrame = now;
    if ((now / QUANTUM) % burst === 0) {
      while (next < arrivals.length && arrivals[next][0] <= now) {
        const k = arrivals[next++][1];
        const samples = new Float32Array(frame).fill(0.1);
        node.arrive({ ts: k * frame, left: samples, right: samples });
      }
    }
    node.process([], [[left, right]]);
    targets.push({ t: now / RATE, ms: (node.target * 1000) / RATE });
  }
  return { targets, stats: node.stats };
}

// A stall: from `at` for `long` seconds nothing arrives, then the backlog all at once; around
// it, a few tenths of a millisecond of everyday jitter.
function stall(at, long) {
  return (t) => (t >= at && t < at + long ? (at + long - t) * 1000 : 0.3 * Math.sin(t * 37));
}

test("the end of a stall near the maximum is let go of about a second after it", () => {
  const { targets } = play(12, stall(4, 0.2));
  const peak = Math.max(...targets.map((r) => r.ms));
  assert.ok(peak >= 150, `the stall raised the target to its maximum (${peak} ms)`);
  const raised = targets.findIndex((r) => r.ms >= 150);
  const low = targets.slice(raised).find((r) => r.ms < 10);
  assert.ok(low, "the target came down");
  assert.ok(low.t - 4.2 < 2, `down ${(low.t - 4.2).toFixed(2)} s after the stall (from the whole 2 s window: 2.6 s)`);
});

test("everyday jitter under the margin raises nothing", () => {
  const { targets, stats } = play(10, (t) => 0.3 * Math.sin(t * 37));
  assert.equal(stats.late, 0);
  assert.ok(stats.underrun <= 1, JSON.stringify(stats));
  assert.ok(targets.at(-1).ms <= 3, `at the margin (${targets.at(-1).ms.toFixed(1)} ms)`);
  assert.ok(stats.played > 0.98 * stats.received, JSON.stringify(stats));
});

test("a device that renders several quanta per callback: the buffer learns it, and frames play whole", () => {
  for (const frameMs of [5, 10, 20]) {
    // Packets are seen only between callbacks (every 512 samples): a packet whose start was
    // needed by a quantum already rendered is late, though the rest of it still plays.
    const { targets, stats } = play(10, (t) => 0.3 * Math.sin(t * 37), frameMs, 4);
    assert.ok(stats.late <= 5, `learnt at the start, not late all along (${JSON.stringify(stats)})`);
    assert.ok(stats.underrun <= 10, `frames begin with silence only while it learns (${JSON.stringify(stats)})`);
    assert.ok(stats.played > 0.99 * stats.received, JSON.stringify(stats));
    const ms = targets.at(-1).ms;
    assert.ok(ms > 384 / 48 && ms < 16, `the target covers the callback (${ms.toFixed(1)} ms at ${frameMs} ms frames)`);
  }
});

test("a stall smaller than the maximum is not a stall: the 2 s window still decides", () => {
  // 60 ms late once: the next 2 s of packets are judged with it, as before.
  const { targets } = play(8, stall(3, 0.06));
  const held = targets.filter((r) => r.t > 4.3 && r.t < 4.9);
  assert.ok(held.length && held.every((r) => r.ms > 30), "held while the late packet is in the window");
});

// The worklet's own decoder: npm's opus-decoder loaded into the scope after the prelude, as
// lowlatency.js loads them into the AudioWorklet.
test("with the WebAssembly decoder loaded, Opus packets are decoded in the worklet", async () => {
  const bundle = readFileSync(new URL("../../../node_modules/opus-decoder/dist/opus-decoder.min.js", import.meta.url), "utf8");
  const prelude = readFileSync(new URL("../worklet-prelude.js", import.meta.url), "utf8");
  const scope = {
    currentFrame: 0, registered: null, WebAssembly, Uint8Array, Float32Array,   // one realm, as in a browser
    AudioWorkletProcessor: class { constructor() { this.port = { messages: [], postMessage(m) { this.messages.push(m); } }; } },
    registerProcessor(name, cls) { scope.registered = cls; },
  };
  scope.globalThis = scope;
  vm.createContext(scope);
  vm.runInContext(prelude, scope);
  vm.runInContext(bundle, scope);
  vm.runInContext(SOURCE, scope);
  const node = new scope.registered({ processorOptions: { frameSamples: 480 } });
  const announced = () => node.port.messages.find((m) => m.type === "decoder");
  for (let i = 0; i < 200 && !announced(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual({ ...announced() }, { type: "decoder", ok: true, why: null });
  // A CELT-only, fullband, 10 ms, stereo packet with an empty frame (TOC 0xF4): 480 samples.
  node.arrive({ ts: 0, opus: new Uint8Array([0xf4]) });
  assert.equal(node.stats.received, 1);
  assert.equal(node.frames.size, 1);
  assert.equal([...node.frames.values()][0][0].length, 480);
  // Not Opus (a code-3 packet that claims more frames than it has): counted, never played.
  node.arrive({ ts: 480, opus: new Uint8Array([0xf7, 0xff]) });
  assert.equal(node.stats.decodeErrors, 1);
  assert.equal(node.stats.received, 1);
});

test("without it, the worklet says so (whoever feeds it decodes with WebCodecs)", () => {
  const scope = load();
  const messages = [];
  const node = new scope.registered({ processorOptions: { frameSamples: 480 } });
  node.port.postMessage = (m) => messages.push(m);
  node.announce(false, "test");
  assert.equal(node.decoding, "webcodecs");
  assert.equal(messages[0].ok, false);
});
