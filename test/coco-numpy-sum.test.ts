// npSum / npMean against numpy itself (test/fixtures/coco-8192/numpy_sums.json, made by
// scripts/coco-golden-8192/gen_numpy_sums.py): numpy 1.24.2 adds 8,192-value blocks, each summed
// pairwise ('blocked'); numpy 2.4.6 sums the whole array pairwise ('pairwise').
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { npMean, npSum, pairwiseSum } from '@kestrel/eval';

interface SumCase { kind: 'mixed' | 'unit'; seed: number; n: number; sum: number; mean: number; sum_pairwise: number; mean_pairwise: number }
const fx = JSON.parse(readFileSync(new URL('./fixtures/coco-8192/numpy_sums.json', import.meta.url), 'utf8')) as { numpy: string; numpy_pairwise: string; cases: SumCase[] };

/** The generator's xorshift32 stream, mapped to the same exact doubles. */
function values(seed: number, n: number, kind: SumCase['kind']): Float64Array {
  let x = seed >>> 0;
  const next = (): number => { x = (x ^ (x << 13)) >>> 0; x = (x ^ (x >>> 17)) >>> 0; x = (x ^ (x << 5)) >>> 0; return x; };
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const k = next(), m = next(), y = next();
    const u = (k * 2 ** 21 + (m >>> 11)) / 2 ** 53;
    out[i] = kind === 'mixed' ? ((y & 1) ? -1 : 1) * u * 2 ** (((y >>> 1) % 17) - 8) : u;
  }
  return out;
}

describe(`npSum / npMean reproduce numpy ${fx.numpy} bit for bit`, () => {
  const arrays = new Map<string, Float64Array>();
  for (const c of fx.cases) {
    const key = `${c.kind}/${c.seed}`;
    if (!arrays.has(key)) arrays.set(key, values(c.seed, Math.max(...fx.cases.filter((d) => d.seed === c.seed).map((d) => d.n)), c.kind));
  }
  const prefix = (c: SumCase): Float64Array => arrays.get(`${c.kind}/${c.seed}`)!.slice(0, c.n);

  it('np.add.reduce and np.mean, below, at and above 8,192 values', () => {
    for (const c of fx.cases) {
      const a = prefix(c);
      expect(npSum(a), `${c.kind} n=${c.n} sum`).toBe(c.sum);
      expect(npMean(a), `${c.kind} n=${c.n} mean`).toBe(c.mean);
    }
  });

  it(`'pairwise' reproduces numpy ${fx.numpy_pairwise} bit for bit`, () => {
    for (const c of fx.cases) {
      const a = prefix(c);
      expect(npSum(a, 'pairwise'), `${c.kind} n=${c.n} sum`).toBe(c.sum_pairwise);
      expect(npMean(a, 'pairwise'), `${c.kind} n=${c.n} mean`).toBe(c.mean_pairwise);
    }
  });

  it('the fixture tells the orders apart: the two numpys differ above 8,192 values and agree up to it', () => {
    // The mixed-sign, mixed-magnitude arrays are the adversarial ones (8 of their 10 sizes above 8,192).
    const big = fx.cases.filter((c) => c.kind === 'mixed' && c.n > 8192);
    expect(big.filter((c) => c.sum !== c.sum_pairwise).length).toBeGreaterThanOrEqual(big.length / 2);
    for (const c of fx.cases.filter((d) => d.n <= 8192)) expect(c.sum_pairwise).toBe(c.sum);
    // One inner-loop call is numpy's pairwise_sum itself.
    for (const c of fx.cases.filter((d) => d.n <= 8192)) expect(0 + pairwiseSum(prefix(c), 0, c.n)).toBe(c.sum);
  });
});
