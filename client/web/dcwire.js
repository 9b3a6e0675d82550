// jamnet: one end of the data-channel audio wire, shared by the audio worker (audio-worker.js)
// and the page's main-thread fallback (lowlatency.js).
// - send: one encoded Opus chunk per unordered, unreliable message; a channel whose SCTP
//   queue holds more than a few packets is congested, and the new packet is dropped (late
//   audio is worse than lost audio);
// - receive: the node's mix goes to the playout worklet's port as Opus, for the worklet to
//   decode, once it says its decoder is ready; until then, or where it has none, WebCodecs
//   decodes here and the worklet gets samples.
// The wire format is node/media/datachannel.py's: kind (1), seq (u16), timestamp (u32, 48 kHz),
// then the Opus packet.

export const RATE = 48000;
const U32 = 4294967296;
const HEADER = 7;
const KIND_OPUS = 1;
// More than this many packets' worth waiting in SCTP (held back by its congestion window) is
// latency: the new packet is dropped (16 KiB, the first limit, was a second of audio).
export const DC_MAX_QUEUED_PACKETS = 4;

// The uplink's WebCodecs encoder: Opus at the session's frame size, restricted low delay.
export function encoderConfig(frameMs, bitrate, sampleRate = RATE, numberOfChannels = 1) {
  return {
    codec: "opus", sampleRate, numberOfChannels, bitrate,
    opus: { frameDuration: frameMs * 1000, application: "lowdelay", complexity: 5 },
  };
}

export class Wire {
  // `stats` is the owner's counters object ({sent, received, sendDropped, decodeErrors});
  // `playout` is the playout worklet's port (or one that reaches it).
  constructor(channel, playout, stats) {
    this.channel = channel;
    this.playout = playout;
    this.stats = stats;
    this.seq = 0;
    this.forward = false;   // the playout worklet decodes (its WebAssembly decoder is ready)
    channel.binaryType = "arraybuffer";
    channel.onmessage = (e) => this.receive(e.data);
    this.decoder = new AudioDecoder({ output: (audio) => this.play(audio), error: () => { stats.decodeErrors++; } });
    this.decoder.configure({ codec: "opus", sampleRate: RATE, numberOfChannels: 2 });
  }

  // An EncodedAudioChunk from the uplink's encoder; its timestamp (µs) is the media time.
  send(chunk) {
    const ch = this.channel;
    const size = HEADER + chunk.byteLength;
    if (ch.readyState !== "open" || ch.bufferedAmount > DC_MAX_QUEUED_PACKETS * size) {
      this.stats.sendDropped++;
      return;
    }
    const message = new Uint8Array(size);
    const view = new DataView(message.buffer);
    view.setUint8(0, KIND_OPUS);
    view.setUint16(1, this.seq++ & 0xffff);
    view.setUint32(3, Math.round((chunk.timestamp * RATE) / 1e6) % U32);
    chunk.copyTo(message.subarray(HEADER));
    ch.send(message);
    this.stats.sent++;
  }

  receive(buffer) {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength <= HEADER) return;
    const view = new DataView(buffer);
    if (view.getUint8(0) !== KIND_OPUS || this.decoder.state !== "configured") return;
    const ts = view.getUint32(3);
    this.stats.received++;
    if (this.forward) {
      this.playout.postMessage({ ts, opus: new Uint8Array(buffer, HEADER) }, [buffer]);
      return;
    }
    try {
      this.decoder.decode(new EncodedAudioChunk({
        type: "key", timestamp: (ts * 1e6) / RATE, data: new Uint8Array(buffer, HEADER),
      }));
    } catch (e) { this.stats.decodeErrors++; }
  }

  play(audio) {
    const n = audio.numberOfFrames;
    const left = new Float32Array(n), right = new Float32Array(n);
    audio.copyTo(left, { planeIndex: 0, format: "f32-planar" });
    audio.copyTo(right, { planeIndex: audio.numberOfChannels > 1 ? 1 : 0, format: "f32-planar" });
    const ts = Math.round((audio.timestamp * RATE) / 1e6) % U32;
    audio.close();
    this.playout.postMessage({ ts, left, right }, [left.buffer, right.buffer]);
  }

  close() {
    if (this.decoder.state !== "closed") { try { this.decoder.close(); } catch (e) { /* closed */ } }
    try { this.channel.close(); } catch (e) { /* closed */ }
  }
}
