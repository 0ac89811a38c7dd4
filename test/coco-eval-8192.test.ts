// Golden cases whose summarize() means average more than 8,192 values, made by pycocotools itself
// (cocoapi @ 8c9bcc3, numpy 1.24.2) with scripts/coco-golden-8192/gen.py on the bundled COCO val2017
// subset. numpy sums such means in 8,192-value blocks, so only numpy's exact order gives === stats.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { COCO, COCOeval, evaluateCoco, type IouType } from '@kestrel/eval';
import { isKestrelError } from '@kestrel/core';

const dir = new URL('./fixtures/coco-8192/', import.meta.url);
const loadGz = (f: string): unknown => JSON.parse(gunzipSync(readFileSync(new URL(f, dir))).toString('utf8'));

interface Case {
  name: string; iouType: IouType; gt: string; res: string; params_override: Record<string, unknown>;
  stats: number[]; stats_pairwise: number[]; mean_sizes: number[]; summary_text: string;
  precision_shape: number[]; precision_sha256: string; recall_shape: number[]; recall_sha256: string; recall?: number[];
}

const { cases, numpy, numpy_pairwise } = JSON.parse(readFileSync(new URL('cases.json', dir), 'utf8')) as { cases: Case[]; numpy: string; numpy_pairwise: string };
const inputs = new Map<string, unknown>();
const input = (f: string): unknown => {
  if (!inputs.has(f)) inputs.set(f, loadGz(f));
  return inputs.get(f);
};

/** Nested arrays flattened in C order, with their shape. */
function flatten(a: unknown): { shape: number[]; values: Float64Array } {
  const shape: number[] = [];
  for (let x = a; Array.isArray(x); x = x[0]) shape.push(x.length);
  const values = new Float64Array(shape.reduce((p, n) => p * n, 1));
  let i = 0;
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) for (const y of x) walk(y);
    else values[i++] = x as number;
  };
  walk(a);
  return { shape, values };
}

/** sha256 of little-endian float64 bytes, as the generator hashes numpy's C-contiguous '<f8' array. */
function sha256(v: Float64Array): string {
  const buf = Buffer.alloc(v.length * 8);
  for (let i = 0; i < v.length; i++) buf.writeDoubleLE(v[i]!, i * 8);
  return createHash('sha256').update(buf).digest('hex');
}

describe(`COCOeval golden cases with means over more than 8,192 values (pycocotools, numpy ${numpy})`, () => {
  it('cover bbox, segm and keypoints, useCats 0 and 1, imgIds subsets, each with a mean over > 8,192 values', () => {
    expect(cases.length).toBe(12);
    for (const t of ['bbox', 'segm', 'keypoints']) {
      for (const useCats of [0, 1]) {
        const some = cases.filter((c) => c.iouType === t && (c.params_override.useCats ?? 1) === useCats && c.params_override.imgIds !== undefined);
        expect(some.length, `${t} useCats=${useCats} with an imgIds subset`).toBeGreaterThan(0);
      }
    }
    for (const c of cases) expect(Math.max(...c.mean_sizes), c.name).toBeGreaterThan(8192);
  });

  for (const c of cases) {
    it(`${c.name}: every stat === pycocotools', and the --full arrays match`, { timeout: 120_000 }, () => {
      const r = evaluateCoco({ gt: input(c.gt), results: input(c.res), iouType: c.iouType, params: c.params_override, full: true });
      expect(r.stats.length).toBe(c.iouType === 'keypoints' ? 10 : 12);
      // Exact, stat by stat (toBe is Object.is: no tolerance).
      r.stats.forEach((s, i) => expect(s, `stats[${i}] (mean of ${c.mean_sizes[i]} values)`).toBe(c.stats[i]));
      expect(r.summary).toBe(c.summary_text);
      const p = flatten(r.precision);
      expect(p.shape).toEqual(c.precision_shape);
      expect(sha256(p.values)).toBe(c.precision_sha256);
      const rc = flatten(r.recall);
      expect(rc.shape).toEqual(c.recall_shape);
      if (c.recall) expect(Array.from(rc.values)).toEqual(c.recall);
      expect(sha256(rc.values)).toBe(c.recall_sha256);
    });
  }
});

describe(`numpySum 'pairwise': pycocotools' summarize() on numpy ${numpy_pairwise} (one pairwise sum per mean)`, () => {
  it('the two numpys disagree on some stats of these cases (so each order is really tested)', () => {
    const differ = cases.flatMap((c) => c.stats.filter((s, i) => s !== c.stats_pairwise[i]));
    expect(differ.length).toBeGreaterThan(0);
  });

  for (const c of cases) {
    it(`${c.name}: every stat === numpy ${numpy_pairwise}'s`, { timeout: 120_000 }, () => {
      const gt = new COCO(input(c.gt));
      const E = new COCOeval(gt, gt.loadRes(input(c.res)), c.iouType);
      Object.assign(E.params, c.params_override);
      E.evaluate();
      E.accumulate();
      E.summarize('pairwise').forEach((s, i) => expect(s, `stats[${i}] (mean of ${c.mean_sizes[i]} values)`).toBe(c.stats_pairwise[i]));
      E.summarize().forEach((s, i) => expect(s, `stats[${i}], default order`).toBe(c.stats[i]));
    });
  }

  it('evaluateCoco refuses an unknown order with E_OPTIONS naming both', () => {
    const c = cases[0]!;
    let err: unknown;
    try { evaluateCoco({ gt: input(c.gt), results: [], iouType: 'bbox', numpySum: 'kahan' as 'blocked' }); } catch (e) { err = e; }
    expect(isKestrelError(err) && err.code).toBe('E_OPTIONS');
    expect(String((err as Error).message)).toMatch(/"blocked".*"pairwise"/);
    // The class API checks it too (a JS caller is not held to the type).
    const gt = new COCO(input(c.gt));
    const E = new COCOeval(gt, gt.loadRes([]), 'bbox');
    E.evaluate(); E.accumulate();
    let err2: unknown;
    try { E.summarize('kahan' as 'blocked'); } catch (e) { err2 = e; }
    expect(isKestrelError(err2) && err2.code).toBe('E_OPTIONS');
  });
});
