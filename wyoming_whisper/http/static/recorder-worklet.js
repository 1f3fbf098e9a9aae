// AudioWorklet processor for the try-it page: hands the microphone's samples (mono, the
// context's own rate) to the page in blocks of about 85 ms at 48 kHz; the page resamples them.
"use strict";

const BLOCK = 4096;

class PcmTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(BLOCK);
    this.fill = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const frames = channels[0].length;
    for (let i = 0; i < frames; i++) {
      let sum = 0;
      for (const channel of channels) sum += channel[i];
      this.block[this.fill++] = sum / channels.length;
      if (this.fill === BLOCK) {
        this.port.postMessage(this.block);
        this.block = new Float32Array(BLOCK);
        this.fill = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-tap", PcmTap);
