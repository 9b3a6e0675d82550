// jamnet: the browser's low-latency audio path. Opus encoded by WebCodecs (restricted low
// delay, the session's frame size) goes to the node as one unordered, unreliable data-channel
// message per packet; the node's mix comes back the same way and is decoded and played by an
// AudioWorklet with a small jitter buffer of its own (playout-worklet.js; libopus in
// WebAssembly there, WebCodecs until it is ready or where it cannot load). Both ends of the
// wire are dcwire.js's.
//
// Where the browser can hand a data channel to a worker, none of the packets pass through
// the page's main thread: capture-worklet.js cuts the microphone into frames on the audio
// thread, audio-worker.js encodes, sends and receives, and feeds the playout worklet
// directly (which decodes). Elsewhere (no transferable RTCDataChannel, no module workers) the
// same wire runs here, on the main thread, with the microphone read by a
// MediaStreamTrackProcessor.
import { Wire, encoderConfig } from "./dcwire.js";

const DC_LABEL = "jamnet-audio";

function lowLatencySupported() {
  return typeof AudioEncoder === "function" && typeof AudioDecoder === "function" &&
    typeof MediaStreamTrackProcessor === "function" && typeof AudioWorkletNode === "function" &&
    window.isSecureContext;
}

// libopus in WebAssembly for the playout worklet (npm's opus-decoder, served by the node at
// /vendor/opus-decoder.js). Where it cannot load, the worklet says so and WebCodecs decodes.
async function loadDecoder(ctx) {
  try {
    await ctx.audioWorklet.addModule("/static/worklet-prelude.js");
    await ctx.audioWorklet.addModule("/vendor/opus-decoder.js");
  } catch (e) {
    console.warn("the page decodes with WebCodecs:", e.message || e);
  }
}

class DataChannelAudio {
  constructor(ctx, stream, frameMs, bitrate) {
    this.ctx = ctx;
    this.stream = stream;
    this.frameMs = frameMs;
    this.bitrate = bitrate;
    this.stats = { sent: 0, received: 0, sendDropped: 0, decodeErrors: 0, playout: null };
    this.closed = false;
    this.mode = null;     // "worker" (off the main thread) or "page" (the fallback)
    this.wire = null;     // the page's end of the wire (the fallback only)
  }

  // Adds the channel to `pc` (before the offer is made) and starts everything that does not
  // need the connection yet.
  async prepare(pc) {
    this.channel = pc.createDataChannel(DC_LABEL, { ordered: false, maxRetransmits: 0 });
    const feed = this.handOver();   // in the channel's creating task: Chromium's rule
    await loadDecoder(this.ctx);
    await this.ctx.audioWorklet.addModule("/static/playout-worklet.js");
    this.node = new AudioWorkletNode(this.ctx, "jamnet-playout", {
      numberOfInputs: 0, outputChannelCount: [2],
      processorOptions: { frameSamples: Math.round(48 * this.frameMs) },
    });
    this.node.port.onmessage = (ev) => {
      if (ev.data.type === "decoder") { if (this.wire) this.wire.forward = ev.data.ok; }
      else this.stats.playout = ev.data;
    };
    if (feed) {
      this.node.port.postMessage({ feed }, [feed]);
      await this.startCapture();
      return this.node;
    }
    this.mode = "page";
    this.wire = new Wire(this.channel, this.node.port, this.stats);
    this.channel.onopen = () => this.startSending().catch((e) => console.warn("uplink stopped", e));
    return this.node;   // the mix, as an AudioNode
  }

  // Hands the new channel to audio-worker.js, with one MessagePort for the capture worklet's
  // frames and one for the playout worklet's packets. Returns the playout worklet's port, or
  // null where the browser cannot transfer a data channel (nothing was handed over then, and
  // the main-thread path takes it).
  handOver() {
    if (typeof Worker !== "function" || typeof MessageChannel !== "function") return null;
    let worker;
    try {
      worker = new Worker("/static/audio-worker.js", { type: "module" });
    } catch (e) {   // no module workers here
      console.info("audio stays on the main thread:", e.message);
      return null;
    }
    const feed = new MessageChannel(), capture = new MessageChannel();
    try {
      worker.postMessage({
        type: "start", channel: this.channel, playout: feed.port1, capture: capture.port2,
        frameMs: this.frameMs, bitrate: this.bitrate,
      }, [this.channel, feed.port1, capture.port2]);
    } catch (e) {   // DataCloneError: RTCDataChannel is not transferable here
      console.info("audio stays on the main thread:", e.message);
      worker.terminate();
      return null;
    }
    this.worker = worker;
    this.capturePort = capture.port1;
    this.mode = "worker";
    worker.onmessage = (ev) => {
      if (ev.data.type !== "stats") return;
      Object.assign(this.stats, ev.data.stats);
      if (ev.data.error) console.warn("audio worker", ev.data.error);
    };
    worker.onerror = (ev) => console.warn("audio worker failed", ev.message);
    return feed.port2;
  }

  // The worker path's microphone: the capture worklet, fed by the AudioContext.
  async startCapture() {
    await this.ctx.audioWorklet.addModule("/static/capture-worklet.js");
    this.capture = new AudioWorkletNode(this.ctx, "jamnet-capture", {
      numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { frameSamples: Math.round(48 * this.frameMs) },
    });
    this.capture.port.postMessage({ port: this.capturePort }, [this.capturePort]);
    // The capture node outputs nothing; joining it to the destination (silenced) keeps the
    // audio graph pulling it.
    this.captureSink = this.ctx.createGain();
    this.captureSink.gain.value = 0;
    this.micSource = this.ctx.createMediaStreamSource(this.stream);
    this.micSource.connect(this.capture).connect(this.captureSink).connect(this.ctx.destination);
  }

  async startSending() {
    const [track] = this.stream.getAudioTracks();
    // Keep at most two captured blocks waiting: a page that stalls (a busy machine) drops
    // what it could not send in time instead of sending it late for ever after.
    const processor = new MediaStreamTrackProcessor({ track, maxBufferSize: 2 });
    this.reader = processor.readable.getReader();
    let encoder = null;
    while (!this.closed) {
      const { value: data, done } = await this.reader.read();
      if (done || !data) break;
      if (!encoder) {
        encoder = new AudioEncoder({
          output: (chunk) => this.wire.send(chunk),
          error: (e) => console.warn("encoder", e),
        });
        encoder.configure(encoderConfig(this.frameMs, this.bitrate, data.sampleRate, data.numberOfChannels));
        this.encoder = encoder;
      }
      encoder.encode(data);
      data.close();
    }
  }

  close() {
    this.closed = true;
    if (this.worker) {
      this.worker.postMessage({ type: "close" });   // it closes the channel and its codecs
      setTimeout(() => this.worker.terminate(), 1000);
    }
    if (this.reader) this.reader.cancel().catch(() => {});
    if (this.encoder && this.encoder.state !== "closed") {
      try { this.encoder.close(); } catch (e) { /* closed */ }
    }
    if (this.wire) this.wire.close();
    for (const node of [this.node, this.capture, this.captureSink, this.micSource]) {
      if (node) node.disconnect();
    }
  }
}

export { DataChannelAudio, lowLatencySupported };
window.jamnetLowLatency = { supported: lowLatencySupported, DataChannelAudio };   // for the benches
