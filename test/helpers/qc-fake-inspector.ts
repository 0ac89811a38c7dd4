import { loadImage } from '@kestrel/core';
import type { Inspector, InspectionResult } from '../../packages/serve/src/inspector.js';

/**
 * TEST ONLY — a stand-in model for unit tests of the HTTP, queue and database layers. It really decodes
 * the image (so corrupt and truncated uploads fail as they do with a real model) and scores it by mean
 * brightness; `delayMs` simulates model time. Never used by kestrel serve or kestrel watch.
 */
export class FakeBrightnessInspectorForTests implements Inspector {
  readonly model = { name: 'fake-brightness-test-only', version: 'test' };
  calls = 0;
  constructor(private readonly threshold = 0.5, private readonly delayMs = 0) {}

  async inspect(image: Buffer): Promise<InspectionResult> {
    this.calls++;
    const img = await loadImage(image, { mode: 'gray' });
    let sum = 0;
    for (let i = 0; i < img.data.length; i++) sum += img.data[i]!;
    const score = sum / img.data.length / 255;
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const verdict = score >= this.threshold ? 'NG' : 'OK';
    return { verdict, score, threshold: this.threshold, defects: verdict === 'NG' ? [{ label: 'bright', score }] : [] };
  }
}
