// jamnet: the data-channel uplink's capture, on the audio rendering thread. It cuts the
// microphone (as the AudioContext hears it, always 48 kHz) into packets of the session's
// frame size and posts each, with the audio clock's index of its first sample, straight to
// the page's audio worker (audio-worker.js) through a MessagePort: the page's main thread,
// which lays out and paints the page, never holds a packet back.
"use strict";

class Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.frame = o.frameSamples || 480;
    this.block = new Float32Array(this.frame);
    this.fill = 0;
    this.start = 0;     // audio-clock index of this.block[0]
    this.out = null;    // the worker's MessagePort
    this.port.onmessage = (ev) => { if (ev.data && ev.data.port) this.out = ev.data.port; };
  }

  process(inputs) {
    if (!this.out) return true;
    const channels = inputs[0] || [];
    const n = channels.length ? channels[0].length : 128;
    const scale = channels.length ? 1 / channels.length : 0;
    for (let i = 0; i < n; i++) {
      if (this.fill === 0) this.start = currentFrame + i;
      let v = 0;
      for (const channel of channels) v += channel[i];
      this.block[this.fill++] = v * scale;   // mono: the channels' mean (silence unconnected)
      if (this.fill === this.frame) {
        this.out.postMessage({ frame: this.start, pcm: this.block }, [this.block.buffer]);
        this.block = new Float32Array(this.frame);
        this.fill = 0;
      }
    }
    return true;
  }
}

registerProcessor("jamnet-capture", Capture);
