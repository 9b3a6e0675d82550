// jamnet: the browser's low-latency audio path. Opus encoded by WebCodecs (restricted low
// delay, the session's frame size) goes to the node as one unordered, unreliable data-channel
// message per packet; the node's mix comes back the same way, is decoded by WebCodecs and is
// played by an AudioWorklet with a small jitter buffer of its own (playout-worklet.js).
// The wire format is node/media/datachannel.py's: kind (1), seq (u16), timestamp (u32), Opus.

const DC_LABEL = "jamnet-audio";
// More than this many packets' worth waiting in SCTP (held back by its congestion window) is
// latency: drop the new packet instead (16 KiB, the first limit, was a second of audio).
const DC_MAX_QUEUED_PACKETS = 4;

function lowLatencySupported() {
  return typeof AudioEncoder === "function" && typeof AudioDecoder === "function" &&
    typeof MediaStreamTrackProcessor === "function" && typeof AudioWorkletNode === "function" &&
    window.isSecureContext;
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
  }

  // Adds the channel to `pc` (before the offer is made) and starts everything that does not
  // need the connection yet.
  async prepare(pc) {
    this.channel = pc.createDataChannel(DC_LABEL, { ordered: false, maxRetransmits: 0 });
    this.channel.binaryType = "arraybuffer";
    this.channel.onmessage = (ev) => this.receive(ev.data);
    await this.ctx.audioWorklet.addModule("/static/playout-worklet.js");
    this.node = new AudioWorkletNode(this.ctx, "jamnet-playout", {
      numberOfInputs: 0, outputChannelCount: [2],
      processorOptions: { frameSamples: Math.round(48 * this.frameMs) },
    });
    this.node.port.onmessage = (ev) => { this.stats.playout = ev.data; };
    this.decoder = new AudioDecoder({
      output: (audio) => this.play(audio),
      error: () => { this.stats.decodeErrors++; },
    });
    this.decoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: 2 });
    this.channel.onopen = () => this.startSending().catch((e) => console.warn("uplink stopped", e));
    return this.node;   // the mix, as an AudioNode
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
    if (this.reader) this.reader.cancel().catch(() => {});
    for (const codec of [this.encoder, this.decoder]) {
      if (codec && codec.state !== "closed") { try { codec.close(); } catch (e) { /* closed */ } }
    }
    if (this.node) this.node.disconnect();
    if (this.channel) this.channel.close();
  }
}

export { DataChannelAudio, lowLatencySupported };
window.jamnetLowLatency = { supported: lowLatencySupported, DataChannelAudio };   // for the benches
