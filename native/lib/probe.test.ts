/**
 * The machine probe behind `kestrel bench lm`'s bound: it reports finite positive figures for the ISA and pool
 * in use, and refuses a bad buffer size. (What the figures are worth is a benchmark matter, not asserted here.)
 */
import { describe, it, expect } from 'vitest';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { probeMachine } from './probe.js';

const built = existsSync(fileURLToPath(new URL('../build/Release/kestrel_native.node', import.meta.url)));

describe.skipIf(!built)('probeMachine', () => {
  it('measures bandwidth and peaks with the engine in use', async () => {
    const { nativeInfo } = await import('./addon.js');
    const p = await probeMachine({ bufferMb: 64 });
    for (const k of ['readGBps', 'f32Gflops', 'int8Gops'] as const) {
      expect(Number.isFinite(p[k]), k).toBe(true);
      expect(p[k], k).toBeGreaterThan(0);
    }
    expect(p.isa).toBe(nativeInfo().isa);
    expect(p.threads).toBe(nativeInfo().threads);
  });

  it('refuses a bad buffer size with E_OPTIONS', async () => {
    await expect(probeMachine({ bufferMb: 0 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(probeMachine({ bufferMb: 1.5 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});
