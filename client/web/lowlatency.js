// jamnet: the browser's low-latency audio path. Opus encoded by WebCodecs (restricted low
// delay, the session's frame size) goes to the node as one unordered, unreliable data-channel
// message per packet; the node's mix comes back the same way and is decoded and played by an
// AudioWorklet with a small jitter buffer of its own (playout-worklet.js; libopus in
// WebAssembly there, WebCodecs until it is ready or where it cannot load).
// The wire format is node/media/datachannel.py's: kind (1), seq (u16), timestamp (u32), Opus.
//
// Where the browser can hand a data channel to a worker, none of the packets pass through
// the page's main thread: capture-worklet.js cuts the microphone into frames on the audio
// thread, audio-worker.js encodes, sends and receives, and feeds the playout worklet
// directly (which decodes). Elsewhere (no transferable RTCDataChannel) the same work runs here, on the main
// thread, with the microphone read by a MediaStreamTrackProcessor.

const DC_LABEL = "jamnet-audio";
// More than this many packets' worth waiting in SCTP (held back by its congestion window) is
// latency: drop the new packet instead (16 KiB, the first limit, was a second of audio).
const DC_MAX_QUEUED_PACKETS = 4;

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
    this.seq = 0;
    this.stats = { sent: 0, received: 0, sendDropped: 0, decodeErrors: 0, playout: null };
    this.closed = false;
    this.mode = null;     // "worker" (off the main thread) or "page" (the fallback)
    this.forward = false; // the playout worklet decodes (its WebAssembly decoder is ready)
  }

  // Adds the channel to `pc` (before the offer is made) and starts everything that does not
  // need the connection yet.
  async prepare(pc) {
    this.channel = pc.createDataChannel(DC_LABEL, { ordered: false, maxRetransmits: 0 });
    this.channel.binaryType = "arraybuffer";
    const feed = this.handOver();   // in the channel's creating task: Chromium's rule
    await loadDecoder(this.ctx);
    await this.ctx.audioWorklet.addModule("/static/playout-worklet.js");
    this.node = new AudioWorkletNode(this.ctx, "jamnet-playout", {
      numberOfInputs: 0, outputChannelCount: [2],
      processorOptions: { frameSamples: Math.round(48 * this.frameMs) },
    });
    this.node.port.onmessage = (ev) => {
      if (ev.data.type === "decoder") this.forward = ev.data.ok;
      else this.stats.playout = ev.data;
    };
    if (feed) {
      this.node.port.postMessage({ feed }, [feed]);
      await this.startCapture();
      return this.node;
    }
    this.mode = "page";
    this.channel.onmessage = (ev) => this.receive(ev.data);
    this.decoder = new AudioDecoder({
      output: (audio) => this.play(audio),
      error: () => { this.stats.decodeErrors++; },
    });
    this.decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 2 });
    this.channel.onopen = () => this.startSending().catch((e) => console.warn("uplink stopped", e));
    return this.node;   // the mix, as an AudioNode
  }

  // Hands the new channel to audio-worker.js, with one MessagePort for the capture worklet's
  // frames and one for the playout worklet's packets. Returns the playout worklet's port, or
  // null where the browser cannot transfer a data channel (nothing was handed over then, and
  // the main-thread path takes it).
  handOver() {
    if (typeof Worker !== "function" || typeof MessageChannel !== "function") return null;
    const worker = new Worker("/static/audio-worker.js");
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
          output: (chunk) => this.send(chunk),
          error: (e) => console.warn("encoder", e),
        });
        encoder.configure({
          codec: "opus", sampleRate: data.sampleRate, numberOfChannels: data.numberOfChannels,
          bitrate: this.bitrate,
          opus: { frameDuration: this.frameMs * 1000, application: "lowdelay", complexity: 5 },
        });
        this.encoder = encoder;
      }
      encoder.encode(data);
      data.close();
    }
  }

  send(chunk) {
    const ch = this.channel;
    const size = 7 + chunk.byteLength;
    if (!ch || ch.readyState !== "open" || ch.bufferedAmount > DC_MAX_QUEUED_PACKETS * size) {
      this.stats.sendDropped++;
      return;
    }
    const message = new Uint8Array(size);
    const view = new DataView(message.buffer);
    view.setUint8(0, 1);
    view.setUint16(1, this.seq++ & 0xffff);
    view.setUint32(3, Math.round((chunk.timestamp * 48000) / 1e6) % 4294967296);
    chunk.copyTo(message.subarray(7));
    ch.send(message);
    this.stats.sent++;
  }

  receive(buffer) {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength <= 7) return;
    const view = new DataView(buffer);
    if (view.getUint8(0) !== 1) return;
    const ts = view.getUint32(3);
    this.stats.received++;
    if (this.forward) {   // the playout worklet decodes
      this.node.port.postMessage({ ts, opus: new Uint8Array(buffer, 7) }, [buffer]);
      return;
    }
    try {
      this.decoder.decode(new EncodedAudioChunk({
        type: "key", timestamp: (ts * 1e6) / 48000, data: new Uint8Array(buffer, 7),
      }));
    } catch (e) { this.stats.decodeErrors++; }
  }

  play(audio) {
    const n = audio.numberOfFrames;
    const left = new Float32Array(n), right = new Float32Array(n);
    audio.copyTo(left, { planeIndex: 0, format: "f32-planar" });
    audio.copyTo(right, { planeIndex: audio.numberOfChannels > 1 ? 1 : 0, format: "f32-planar" });
    const ts = Math.round((audio.timestamp * 48000) / 1e6) % 4294967296;
    audio.close();
    this.node.port.postMessage({ ts, left, right }, [left.buffer, right.buffer]);
  }

  close() {
    this.closed = true;
    if (this.worker) {
      this.worker.postMessage({ type: "close" });   // it closes the channel and its codecs
      setTimeout(() => this.worker.terminate(), 1000);
    }
    if (this.reader) this.reader.cancel().catch(() => {});
    for (const codec of [this.encoder, this.decoder]) {
      if (codec && codec.state !== "closed") { try { codec.close(); } catch (e) { /* closed */ } }
    }
    for (const node of [this.node, this.capture, this.captureSink, this.micSource]) {
      if (node) node.disconnect();
    }
    if (this.channel && !this.worker) this.channel.close();
  }
}

export { DataChannelAudio, lowLatencySupported };
window.jamnetLowLatency = { supported: lowLatencySupported, DataChannelAudio };   // for the benches
