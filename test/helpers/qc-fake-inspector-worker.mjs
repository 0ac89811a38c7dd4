// TEST ONLY — the worker of FakeBrightnessInspectorForTests: decodes the image, scores it by mean
// brightness and holds its core (a busy loop, as a real model does) for delayMs.
import { serveWorker, loadImage } from '@kestrel/core';

serveWorker(() => ({
  handlers: {
    inspect: async ({ bytes, delayMs, crashOnWhite }) => {
      const img = await loadImage(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { mode: 'gray' });
      let sum = 0;
      for (let i = 0; i < img.data.length; i++) sum += img.data[i];
      const score = sum / img.data.length / 255;
      // injected fault: an all-white image kills this worker thread, as a native crash would
      if (crashOnWhite && score > 0.999) process.exit(70);
      const end = performance.now() + delayMs;
      while (performance.now() < end) { /* burn the core */ }
      return score;
    },
  },
}));
