import { WorkerClient } from '@kestrel/core';
import type { Inspector, InspectionResult } from '../../packages/serve/src/inspector.js';

/** What the fake can be told to do besides scoring. */
export interface FakeInspectorOptions {
  /** an all-white image kills the model worker (process.exit in the worker thread): an injected crash */
  crashOnWhite?: boolean;
}

/**
 * TEST ONLY — a stand-in model for unit tests of the HTTP, queue and database layers. Like a real model
 * it runs in a worker thread (`npx tsc -b` first: workers import @kestrel/core's dist/): it really decodes
 * the image (so corrupt and truncated uploads fail as they do with a real model), scores it by mean
 * brightness, and holds a core with a busy loop for `delayMs`. Never used by kestrel serve or kestrel watch.
 */
export class FakeBrightnessInspectorForTests implements Inspector {
  readonly model = { name: 'fake-brightness-test-only', version: 'test' };
  calls = 0;
  private readonly worker: WorkerClient;
  constructor(private readonly threshold = 0.5, private readonly delayMs = 0, private readonly options: FakeInspectorOptions = {}) {
    this.worker = new WorkerClient({ script: new URL('./qc-fake-inspector-worker.mjs', import.meta.url), init: null });
  }

  /** times the worker died and was replaced */
  get restarts(): number { return this.worker.restarts; }

  async inspect(image: Buffer): Promise<InspectionResult> {
    this.calls++;
    const score = await this.worker.call<number>('inspect', { bytes: image, delayMs: this.delayMs, crashOnWhite: this.options.crashOnWhite === true });
    const verdict = score >= this.threshold ? 'NG' : 'OK';
    return { verdict, score, threshold: this.threshold, defects: verdict === 'NG' ? [{ label: 'bright', score }] : [] };
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}
