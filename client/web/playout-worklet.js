// jamnet: plays the node's mix, decoded from data-channel packets, with a jitter buffer of
// its own (the same scheme as the node's, node/session/jitter.py, in samples of the audio
// clock). A packet is due a small, measured delay after the fastest it could have arrived:
// - transit = arrival (currentFrame) - media timestamp; the smallest over ~2 s is the base;
// - the playout position runs `target` samples behind base: a packet that arrives after its
//   samples were needed is late and raises the target at once to cover packets that slow;
// - after 1 s without a late packet the target falls quickly towards the 98th percentile of
//   recent delays (plus a 2 ms margin);
// - missing samples are silence (counted), overdue packets are dropped;
// - a position that stayed over 1 ms behind the schedule for a whole adapt spell (inside the
//   skip's hysteresis of one packet, after the target fell) catches up: it would otherwise
//   sit up to a packet behind for good;
// - a late packet that needs nearly the maximum (a stall: this machine or the node was
//   overloaded, a radio rescanned) is not a pattern to hold: once calm, the level is judged
//   from the packets since the last late one only, so the stall's end is let go of about a
//   second after it, not when it has left the 2 s window (as node/session/jitter.py does).
"use strict";

const RATE = 48000;
const WINDOW_S = 2;
const MARGIN = 96;            // 2 ms
const CALM = RATE;            // 1 s without a late packet before the target falls
const ADAPT_EVERY = RATE / 4; // re-judge the level four times a second
const MAX_TARGET = RATE * 0.16;
const U32 = 4294967296;
const STANDING_LAG = 48;      // 1 ms
const STALL_SHARE = 0.9;      // a late packet needing this share of MAX_TARGET is a stall
const MIN_JUDGED = 8;         // packets at least to judge a level from

class Playout extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.frame = o.frameSamples || 240;
    this.window = Math.max(8, Math.round((WINDOW_S * RATE) / this.frame));
    this.target = MARGIN;
    this.frames = new Map();     // extended timestamp -> [left, right]
    this.lastTs = null;
    this.origin = 0;
    this.count = 0;
    this.transits = [];          // monotonic deque of [count, transit] (sliding minimum)
    this.delays = [];
    this.pos = null;             // media position of the next output sample
    this.raisedAt = -Infinity;
    this.lateCount = -1;         // arrival count of the last late packet
    this.stalled = false;        // the last raise was for a stall (near MAX_TARGET)
    this.nextAdapt = 0;
    this.nextReport = 0;
    this.waitSum = 0; this.waitCount = 0;
    this.leastLag = Infinity;    // the smallest lag behind the schedule since the last adapt
    this.trim = false;
    this.raised = false;         // the target rose since the last quantum: follow it at once
    this.stats = { received: 0, played: 0, late: 0, underrun: 0, dropped: 0, resyncs: 0, decodeErrors: 0 };
    this.decoder = null;
    this.decoding = null;        // "wasm" once the decoder here is ready, else "webcodecs"
    this.feed = null;
    // Packets come from the page (main-thread path) or, once it hands one over, through a
    // MessagePort straight from the page's audio worker.
    this.port.onmessage = (ev) => {
      if (ev.data && ev.data.feed) {
        this.feed = ev.data.feed;
        this.feed.onmessage = (e) => this.arrive(e.data);
        if (this.decoding) this.feed.postMessage({ type: "decoder", ok: this.decoding === "wasm" });
      } else this.arrive(ev.data);
    };
    this.startDecoder();
  }

  // libopus in WebAssembly, where the page loaded it into this scope (/vendor/opus-decoder.js):
  // packets are decoded here, on the audio thread, the moment they arrive. WebCodecs' decoder
  // runs elsewhere and, with both cores busy, handed packets back up to 160 ms after they
  // came (the page's buffer then had to cover that). Until this one is ready, or where it
  // cannot load, whoever feeds the packets decodes them with WebCodecs and posts samples.
  startDecoder() {
    const lib = globalThis["opus-decoder"];
    if (!lib || typeof WebAssembly !== "object") { this.announce(false, "no WebAssembly Opus decoder loaded"); return; }
    try {
      const decoder = new lib.OpusDecoder({ channels: 2 });
      decoder.ready.then(() => { this.decoder = decoder; this.announce(true); },
                         (e) => this.announce(false, String(e)));
    } catch (e) { this.announce(false, String(e)); }
  }

  announce(ok, why) {
    this.decoding = ok ? "wasm" : "webcodecs";
    const message = { type: "decoder", ok, why: why || null };
    this.port.postMessage(message);
    if (this.feed) this.feed.postMessage(message);
  }

  // Samples of one packet: {ts, opus} is decoded here, {ts, left, right} is decoded already.
  samples(msg) {
    if (!msg.opus) return [msg.left, msg.right];
    let out = null;   // (an empty packet would be concealment, up to 120 ms of it: not played)
    if (!msg.opus.length) { this.stats.decodeErrors++; return null; }
    try { out = this.decoder ? this.decoder.decodeFrame(msg.opus) : null; } catch (e) { out = null; }
    if (!out || !out.samplesDecoded) { this.stats.decodeErrors++; return null; }
    return [out.channelData[0], out.channelData[1] || out.channelData[0]];
  }

  unwrap(ts) {
    if (this.lastTs === null) { this.lastTs = ts; this.origin = ts; return ts; }
    const ref = this.lastTs;
    let delta = (ts - (ref % U32)) % U32;
    if (delta < 0) delta += U32;
    if (delta >= U32 / 2) delta -= U32;
    const ext = ref + delta;
    if (ext > this.lastTs) this.lastTs = ext;
    return ext;
  }

  base() { return this.transits.length ? this.transits[0][1] : null; }

  arrive(msg) {
    const pcm = this.samples(msg);
    if (!pcm) return;
    const [left, right] = pcm;
    const now = currentFrame;
    const ext = this.unwrap(msg.ts);
    const n = left.length;
    if (n !== this.frame) { this.frame = n; this.window = Math.max(8, Math.round((WINDOW_S * RATE) / n)); }
    this.stats.received++;
    const transit = now - ext;
    const count = this.count++;
    while (this.transits.length && this.transits[this.transits.length - 1][1] >= transit) this.transits.pop();
    this.transits.push([count, transit]);
    while (this.transits[0][0] <= count - this.window) this.transits.shift();
    const delay = transit - this.base();
    this.delays.push(delay);
    if (this.delays.length > this.window) this.delays.shift();
    if (this.pos !== null && ext < this.pos) {
      // Some or all of its samples were needed already (they played as silence): from now
      // on, wait long enough for packets this slow. A packet only partly late still plays
      // the rest. (Counting only wholly late ones left the target at the margin while the
      // audio device, which renders several quanta per callback, needed more: a quarter of
      // the frames began with silence and none counted.)
      this.stats.late++;
      const needed = Math.min(MAX_TARGET, delay + MARGIN);
      this.target = Math.max(this.target, needed);
      this.stalled = this.stalled || needed >= STALL_SHARE * MAX_TARGET;
      this.raisedAt = now;
      this.lateCount = count;
      this.raised = true;
      if (ext + n <= this.pos) return;
    }
    if (this.frames.size > 512) { this.frames.clear(); this.stats.resyncs++; }
    this.frames.set(ext, [left, right, now]);
  }

  adapt(now) {
    if (now < this.nextAdapt || !this.delays.length) return;
    this.nextAdapt = now + ADAPT_EVERY;
    this.trim = Number.isFinite(this.leastLag) && this.leastLag > STANDING_LAG;
    this.leastLag = Infinity;
    if (now - this.raisedAt < CALM) return;
    if (this.stalled) {
      // The stall is over: what the packets since then needed, not what it needed.
      this.stalled = false;
      const since = this.count - 1 - this.lateCount;
      if (since >= MIN_JUDGED && since < this.delays.length) this.delays.splice(0, this.delays.length - since);
    }
    const sorted = this.delays.slice().sort((a, b) => a - b);
    const level = sorted[Math.min(sorted.length - 1, Math.floor(0.98 * sorted.length))] + MARGIN;
    if (level < this.target) this.target = Math.max(level, this.target - 0.75 * (this.target - level));
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const left = out[0], right = out[1] || out[0];
    const n = left.length;
    const now = currentFrame;
    this.adapt(now);
    const base = this.base();
    if (base === null) { left.fill(0); right.fill(0); return true; }
    const desired = Math.round(now - base - this.target);
    if (this.pos === null) this.pos = desired;
    // Follow the schedule when it moved (the target rose or fell, or clocks drifted) by more
    // than the ticks' wobble: skip ahead when behind, hold when ahead.
    const lag = desired - this.pos;
    this.leastLag = Math.min(this.leastLag, lag);
    if (lag > this.frame || -lag > this.frame / 2 || (this.trim && lag > STANDING_LAG) ||
        (this.raised && lag < 0)) {
      if (desired > this.pos) this.stats.dropped++;
      this.pos = desired;
    }
    this.trim = false;
    this.raised = false;
    const frame = this.frame;
    for (let i = 0; i < n;) {
      const p = this.pos + i;
      const start = this.origin + Math.floor((p - this.origin) / frame) * frame;
      const entry = this.frames.get(start);
      const offset = p - start;
      const take = Math.min(n - i, frame - offset);
      if (entry) {
        if (offset === 0) {
          this.stats.played++;
          this.waitSum += now + i - entry[2]; this.waitCount++;
        }
        left.set(entry[0].subarray(offset, offset + take), i);
        right.set(entry[1].subarray(offset, offset + take), i);
      } else {
        left.fill(0, i, i + take); right.fill(0, i, i + take);
        if (offset === 0 || i === 0) this.stats.underrun++;
      }
      i += take;
    }
    this.pos += n;
    for (const key of this.frames.keys()) if (key + frame <= this.pos) this.frames.delete(key);
    if (now >= this.nextReport) {
      this.nextReport = now + RATE / 2;
      const wait = this.waitCount ? this.waitSum / this.waitCount : 0;
      this.waitSum = 0; this.waitCount = 0;
      this.port.postMessage({ target_ms: (this.target * 1000) / RATE, wait_ms: (wait * 1000) / RATE,
                              packet_ms: (frame * 1000) / RATE, decoder: this.decoding, ...this.stats });
    }
    return true;
  }
}

registerProcessor("jamnet-playout", Playout);
