// jamnet: the data-channel audio path off the page's main thread (a dedicated module worker).
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
// Sending and receiving are dcwire.js's, the same as on the main-thread fallback. The page
// hears from this worker only its counters, twice a second.
import { RATE, Wire, encoderConfig } from "./dcwire.js";

// Frames waiting for the encoder beyond this are dropped: a stalled worker catches up at once.
const MAX_ENCODE_QUEUE = 2;

const stats = { sent: 0, received: 0, sendDropped: 0, decodeErrors: 0 };
let wire = null, encoder = null, reporter = null;

self.onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "start") start(m);
  else if (m.type === "close") stop();
};

function start(m) {
  wire = new Wire(m.channel, m.playout, stats);
  m.playout.onmessage = (e) => { if (e.data.type === "decoder") wire.forward = e.data.ok; };
  encoder = new AudioEncoder({ output: (chunk) => wire.send(chunk), error: (e) => report({ error: `encoder: ${e.message || e}` }) });
  encoder.configure(encoderConfig(m.frameMs, m.bitrate));
  m.capture.onmessage = (e) => capture(e.data);
  reporter = setInterval(() => report({}), 500);
}

function report(extra) { self.postMessage({ type: "stats", stats: { ...stats }, ...extra }); }

// One frame from the capture worklet: `frame` is the audio clock's index of its first sample,
// which is the packet's media timestamp (48 kHz), so timestamps follow the audio device.
function capture({ frame, pcm }) {
  if (wire.channel.readyState !== "open" || encoder.state !== "configured") return;
  if (encoder.encodeQueueSize > MAX_ENCODE_QUEUE) { stats.sendDropped++; return; }
  const data = new AudioData({
    format: "f32-planar", sampleRate: RATE, numberOfFrames: pcm.length, numberOfChannels: 1,
    timestamp: (frame * 1e6) / RATE, data: pcm,
  });
  try { encoder.encode(data); } finally { data.close(); }
}

function stop() {
  clearInterval(reporter);
  if (encoder && encoder.state !== "closed") { try { encoder.close(); } catch (e) { /* closed */ } }
  if (wire) wire.close();
  self.close();
}
