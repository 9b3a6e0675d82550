// jamnet: the data-channel audio path off the page's main thread (a dedicated worker).
//
// Why: on the main thread every packet waited for whatever the page was doing (layout, the
// stage's canvas, the meters). Those waits reached the node as jitter, and its buffer for the
// page's stream and the page's own playout buffer both grew to cover them. Here the packets
// only share a thread with each other:
// - uplink: capture-worklet.js posts each frame of the microphone through a MessagePort; it is
//   encoded by WebCodecs (Opus, restricted low delay, the session's frame size) and sent on
//   the data channel, which the page transferred to this worker before it opened;
// - downlink: the node's mix packets go through a MessagePort straight to the playout worklet
//   (playout-worklet.js), which decodes them itself once its WebAssembly decoder is ready;
//   until then, or where it has none, they are decoded here by WebCodecs.
// The wire format is node/media/datachannel.py's: kind (1), seq (u16), timestamp (u32), Opus.
// The page hears from this worker only its counters, twice a second.
"use strict";

const RATE = 48000;
const U32 = 4294967296;
// More than this many packets' worth waiting in SCTP (held back by its congestion window) is
// latency: the new packet is dropped instead (as lowlatency.js does on the main thread).
const DC_MAX_QUEUED_PACKETS = 4;
// Frames waiting for the encoder beyond this are dropped: a stalled worker catches up at once.
const MAX_ENCODE_QUEUE = 2;

const stats = { sent: 0, received: 0, sendDropped: 0, decodeErrors: 0 };
let channel = null, encoder = null, decoder = null, playout = null, reporter = null;
let seq = 0;
let forward = false;   // the playout worklet decodes the packets itself (its decoder is ready)

self.onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "start") start(m);
  else if (m.type === "close") stop();
};

function start(m) {
  channel = m.channel;
  channel.binaryType = "arraybuffer";
  channel.onmessage = (e) => receive(e.data);
  playout = m.playout;
  playout.onmessage = (e) => { if (e.data.type === "decoder") forward = e.data.ok; };
  encoder = new AudioEncoder({ output: send, error: (e) => report({ error: `encoder: ${e.message || e}` }) });
  encoder.configure({
    codec: "opus", sampleRate: RATE, numberOfChannels: 1, bitrate: m.bitrate,
    opus: { frameDuration: m.frameMs * 1000, application: "lowdelay", complexity: 5 },
  });
  decoder = new AudioDecoder({ output: play, error: () => { stats.decodeErrors++; } });
  decoder.configure({ codec: "opus", sampleRate: RATE, numberOfChannels: 2 });
  m.capture.onmessage = (e) => capture(e.data);
  reporter = setInterval(() => report({}), 500);
}

function report(extra) { self.postMessage({ type: "stats", stats: { ...stats }, ...extra }); }

// One frame from the capture worklet: `frame` is the audio clock's index of its first sample,
// which is the packet's media timestamp (48 kHz), so timestamps follow the audio device.
function capture({ frame, pcm }) {
  if (!channel || channel.readyState !== "open" || encoder.state !== "configured") return;
  if (encoder.encodeQueueSize > MAX_ENCODE_QUEUE) { stats.sendDropped++; return; }
  const data = new AudioData({
    format: "f32-planar", sampleRate: RATE, numberOfFrames: pcm.length, numberOfChannels: 1,
    timestamp: (frame * 1e6) / RATE, data: pcm,
  });
  try { encoder.encode(data); } finally { data.close(); }
}

function send(chunk) {
  const size = 7 + chunk.byteLength;
  if (channel.readyState !== "open" || channel.bufferedAmount > DC_MAX_QUEUED_PACKETS * size) {
    stats.sendDropped++;
    return;
  }
  const message = new Uint8Array(size);
  const view = new DataView(message.buffer);
  view.setUint8(0, 1);
  view.setUint16(1, seq++ & 0xffff);
  view.setUint32(3, Math.round((chunk.timestamp * RATE) / 1e6) % U32);
  chunk.copyTo(message.subarray(7));
  channel.send(message);
  stats.sent++;
}

function receive(buffer) {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength <= 7) return;
  const view = new DataView(buffer);
  if (view.getUint8(0) !== 1 || decoder.state !== "configured") return;
  const ts = view.getUint32(3);
  stats.received++;
  if (forward) {
    const opus = new Uint8Array(buffer, 7);
    playout.postMessage({ ts, opus }, [buffer]);
    return;
  }
  try {
    decoder.decode(new EncodedAudioChunk({
      type: "key", timestamp: (ts * 1e6) / RATE, data: new Uint8Array(buffer, 7),
    }));
  } catch (e) { stats.decodeErrors++; }
}

function play(audio) {
  const n = audio.numberOfFrames;
  const left = new Float32Array(n), right = new Float32Array(n);
  audio.copyTo(left, { planeIndex: 0, format: "f32-planar" });
  audio.copyTo(right, { planeIndex: audio.numberOfChannels > 1 ? 1 : 0, format: "f32-planar" });
  const ts = Math.round((audio.timestamp * RATE) / 1e6) % U32;
  audio.close();
  playout.postMessage({ ts, left, right }, [left.buffer, right.buffer]);
}

// (Not named close: a top-level function of a classic worker script replaces self.close.)
function stop() {
  clearInterval(reporter);
  for (const codec of [encoder, decoder]) {
    if (codec && codec.state !== "closed") { try { codec.close(); } catch (e) { /* closed */ } }
  }
  if (channel) { try { channel.close(); } catch (e) { /* closed */ } }
  self.close();
}
