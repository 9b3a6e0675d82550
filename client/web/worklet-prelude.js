// jamnet: loaded into the AudioWorklet's scope before /vendor/opus-decoder.js (npm's
// opus-decoder, libopus in WebAssembly). That bundle also defines a class extending Worker,
// which an AudioWorkletGlobalScope does not have; a stand-in lets the bundle load. Only its
// synchronous decoder is used there, on the audio thread, never its worker.
if (typeof globalThis.Worker === "undefined") globalThis.Worker = class {};
