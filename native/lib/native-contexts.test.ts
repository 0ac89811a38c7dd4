/**
 * Per-context native state (issue 13.2): every worker_thread that loads the addon gets its own engine (thread
 * pool, ISA choice, scratch). Two workers run big linears at the same time and each result must equal the
 * portable reference; a thread count or ISA set in one context must not change another's. Speed-up of two
 * workers is a benchmark (native/bench/contexts.mjs), not an assertion here.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { portableKernels as P } from './portable/index.js';
import { rng, randn, randomWeight } from './random-inputs.js';
import type { LinearWeight } from './contract.js';

const BINARY = fileURLToPath(new URL('../build/Release/kestrel_native.node', import.meta.url));
const built = existsSync(BINARY);

// The worker loads the binary itself (its own napi_env, so its own engine), sets its own thread count and
// ISA, runs the same linear `reps` times into fresh outputs and posts them all back with its info().
const WORKER = `
const { parentPort, workerData: d } = require('node:worker_threads');
const b = require(d.binary);
b.setThreads(d.threads);
if (d.isa) b.setIsa(d.isa);
const w = b.prepareLinear(d.w);
const outs = [];
for (let i = 0; i < d.reps; i++) {
  const out = new Float32Array(d.m * d.w.n).fill(NaN);
  b.linear(d.x, d.m, { ...d.w, handle: w }, null, out);
  outs.push(out);
}
parentPort.postMessage({ info: b.info(), outs });
`;

interface Result { info: { isa: string; threads: number }; outs: Float32Array[] }

function runWorker(data: Record<string, unknown>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const wk = new Worker(WORKER, { eval: true, workerData: { binary: BINARY, ...data } });
    wk.once('message', (r: Result) => { resolve(r); void wk.terminate(); });
    wk.once('error', reject);
  });
}

/** Σ_c |x_c · w_c| per output (f32 weights): the scale of float rounding. */
function absDot(x: Float32Array, m: number, w: LinearWeight & { format: 'f32' }): Float64Array {
  const o = new Float64Array(m * w.n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < w.n; j++) {
      let s = 0;
      for (let c = 0; c < w.k; c++) s += Math.abs(x[i * w.k + c]! * w.data[j * w.k + c]!);
      o[i * w.n + j] = s;
    }
  return o;
}

describe.skipIf(!built)('native engine per worker_thread', () => {
  let mainInfo: () => { isa: string; threads: number; supportedIsas: string[] };
  beforeAll(async () => {
    mainInfo = (await import('./addon.js')).nativeInfo;
  });

  it('two workers computing concurrently both match the portable reference; thread counts and ISAs stay per context', async () => {
    const before = mainInfo();
    const r = rng(41);
    const m = 48, k = 384, n = 512;
    const w = randomWeight(r, n, k, 'f32') as LinearWeight & { format: 'f32' };
    const xa = randn(r, m * k), xb = randn(r, m * k);
    const lowest = before.supportedIsas[before.supportedIsas.length - 1]!;
    const [a, b] = await Promise.all([
      runWorker({ w, x: xa, m, threads: 1, reps: 6 }),
      runWorker({ w, x: xb, m, threads: 2, reps: 6, isa: lowest }),
    ]);
    expect(a.info.threads).toBe(1);
    expect(b.info.threads).toBe(2);
    expect(b.info.isa).toBe(lowest);
    expect(a.info.isa).toBe(before.supportedIsas[0]);
    // The main thread's engine is untouched by either worker.
    expect(mainInfo().threads).toBe(before.threads);
    expect(mainInfo().isa).toBe(before.isa);
    for (const [res, x] of [[a, xa], [b, xb]] as const) {
      const ref = new Float32Array(m * n);
      P.linear(x, m, w, null, ref);
      const scale = absDot(x, m, w);
      expect(res.outs).toHaveLength(6);
      for (const out of res.outs) {
        let bad = -1;
        for (let i = 0; i < ref.length; i++) if (!(Math.abs(out[i]! - ref[i]!) <= 1e-5 * scale[i]! + 1e-7)) { bad = i; break; }
        expect(bad, bad >= 0 ? `element ${bad}: ${out[bad]} vs ${ref[bad]}` : '').toBe(-1);
      }
    }
  }, 60_000);
});
