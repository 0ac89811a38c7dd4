// Behaviours of pycocotools that the golden cases exercise only in bulk, checked on small cases whose
// results follow by hand from cocoeval.py, plus the numpy / Python numerics the port reproduces.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { argsortDescStable, evaluateCoco, formatFixed, pairwiseSum, linspace } from '@kestrel/eval';

const images = (ids: number[]): { id: number; width: number; height: number }[] => ids.map((id) => ({ id, width: 640, height: 480 }));
const cats = [{ id: 1, name: 'thing' }];

describe('numerics', () => {
  it('pairwiseSum reproduces np.sum (pairwise summation) bit for bit', () => {
    const fx = JSON.parse(readFileSync(new URL('./fixtures/coco/numpy_pairwise_sum.json', import.meta.url), 'utf8')) as { a: number[]; sums: Record<string, number> };
    for (const [n, s] of Object.entries(fx.sums)) expect(0 + pairwiseSum(fx.a, 0, Number(n))).toBe(s);
    // A naive left-to-right sum differs on the full array, so the test can tell the two apart.
    expect(fx.a.reduce((x, y) => x + y, 0)).not.toBe(fx.sums['1000']);
  });

  it("formatFixed rounds like Python's '{:0.3f}' (exact ties to even)", () => {
    // Values printed by CPython 3 for '{:0.3f}'.format(x) / '{:0.2f}'.
    expect([0.3125, 0.1875, 0.0625, -1, 0.5005, 2.675].map((x) => formatFixed(x, 3))).toEqual(['0.312', '0.188', '0.062', '-1.000', '0.500', '2.675']);
    expect([0.125, 0.375].map((x) => formatFixed(x, 2))).toEqual(['0.12', '0.38']);
  });

  it('argsortDescStable is a stable descending argsort (ties keep input order)', () => {
    let seed = 12345;
    const rnd = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
    for (const n of [0, 1, 2, 7, 64, 1000, 4097]) {
      const key = Float64Array.from({ length: n }, () => Math.round(rnd() * 20) / 20);
      const idx = Int32Array.from({ length: n }, (_, i) => i);
      argsortDescStable(key, idx, new Int32Array(n));
      const ref = Array.from({ length: n }, (_, i) => i).sort((a, b) => (key[b]! - key[a]!) || (a - b));
      expect(Array.from(idx)).toEqual(ref);
    }
  });

  it('linspace matches np.linspace(.5, .95, 10) including 0.8999999999999999', () => {
    expect(linspace(0.5, 0.95, 10)[8]).toBe(0.8999999999999999);
    expect(linspace(0, 1, 101)[35]).toBe(0.35000000000000003);
  });
});

describe('COCOeval semantics on hand-checked cases', () => {
  it('detections on a crowd region are ignored, and a crowd region absorbs several of them', () => {
    const gt = {
      images: images([1]), categories: cats,
      annotations: [
        { id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], area: 100, iscrowd: 0 },
        { id: 2, image_id: 1, category_id: 1, bbox: [50, 50, 40, 40], area: 1600, iscrowd: 1 },
      ],
    };
    const results = [
      { image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: 0.9 },
      { image_id: 1, category_id: 1, bbox: [55, 55, 10, 10], score: 0.95 },
      { image_id: 1, category_id: 1, bbox: [60, 60, 10, 10], score: 0.8 },
      { image_id: 1, category_id: 1, bbox: [200, 200, 10, 10], score: 0.7 },
    ];
    const r = evaluateCoco({ gt, results, iouType: 'bbox' });
    // Non-ignored ranking: TP (0.9) then FP (0.7): precision tp/(tp+fp+eps) = 1/(1+eps) up to recall 1
    // (pycocotools reports 0.9999999999999998 for a perfect AP).
    expect(Math.abs(r.stats[0]! - 1)).toBeLessThanOrEqual(1e-15);
    expect(Math.abs(r.stats[3]! - 1)).toBeLessThanOrEqual(1e-15);
    // No non-ignored GT of medium / large size: -1.
    expect(r.stats[4]).toBe(-1);
    expect(r.stats[5]).toBe(-1);
    expect(r.stats[8]).toBe(1);
  });

  it('score ties across images resolve in sorted image-id order, not file order', () => {
    const gt = {
      images: images([20, 10]), categories: cats,
      annotations: [
        { id: 1, image_id: 20, category_id: 1, bbox: [0, 0, 50, 50], area: 2500, iscrowd: 0 },
        { id: 2, image_id: 10, category_id: 1, bbox: [0, 0, 50, 50], area: 2500, iscrowd: 0 },
      ],
    };
    // Image 10's detection misses (FP), image 20's hits (TP), same score.
    const results = [
      { image_id: 20, category_id: 1, bbox: [0, 0, 50, 50], score: 0.5 },
      { image_id: 10, category_id: 1, bbox: [300, 300, 50, 50], score: 0.5 },
    ];
    const r = evaluateCoco({ gt, results, iouType: 'bbox' });
    // Order FP, TP: interpolated precision 0.5 for recall thresholds 0..0.5 (51 of 101), 0 above.
    expect(Math.abs(r.stats[0]! - (0.5 * 51) / 101)).toBeLessThanOrEqual(1e-15);
    // Swapping the image ids puts the TP first: precision 1 for those 51 thresholds.
    const gt2 = { ...gt, annotations: gt.annotations.map((a) => ({ ...a, image_id: a.image_id === 20 ? 5 : a.image_id })), images: images([5, 10]) };
    const res2 = results.map((d) => ({ ...d, image_id: d.image_id === 20 ? 5 : d.image_id }));
    expect(Math.abs(evaluateCoco({ gt: gt2, results: res2, iouType: 'bbox' }).stats[0]! - 51 / 101)).toBeLessThanOrEqual(1e-15);
  });

  it('within an image, equal scores keep results-file order (stable sort), which decides the match', () => {
    const gt = { images: images([1]), categories: cats, annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 50, 50], area: 2500, iscrowd: 0 }] };
    const good = { image_id: 1, category_id: 1, bbox: [0, 0, 50, 50], score: 0.5 };
    const weak = { image_id: 1, category_id: 1, bbox: [0, 0, 50, 40], score: 0.5 }; // IoU 0.8
    const a = evaluateCoco({ gt, results: [good, weak], iouType: 'bbox' });
    const b = evaluateCoco({ gt, results: [weak, good], iouType: 'bbox' });
    // First-listed detection gets the GT; with [weak, good] the match fails above IoU 0.8.
    expect(a.stats[0]).toBeGreaterThan(b.stats[0]!);
    expect(a.stats[1]).toBe(b.stats[1]);
  });

  it('boolean iscrowd (validated by the zod path) gives the same numbers as 0/1', () => {
    const gt = JSON.parse(readFileSync(new URL('./fixtures/coco/det_gt.json', import.meta.url), 'utf8')) as { annotations: { iscrowd: number | boolean }[] };
    const res = JSON.parse(readFileSync(new URL('./fixtures/coco/det_res_segm.json', import.meta.url), 'utf8')) as unknown[];
    const a = evaluateCoco({ gt, results: res, iouType: 'segm' });
    const gtBool = { ...gt, annotations: gt.annotations.map((x) => ({ ...x, iscrowd: x.iscrowd === 1 })) };
    const b = evaluateCoco({ gt: gtBool, results: res, iouType: 'segm' });
    expect(b.stats).toEqual(a.stats);
    expect(gt.annotations.some((x) => x.iscrowd === 1)).toBe(true);
  });

  it('maxDets truncation per image uses the score order, and -1 categories stay out of the mean', () => {
    const gt = {
      images: images([1]), categories: [...cats, { id: 2, name: 'absent' }],
      annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 50, 50], area: 2500, iscrowd: 0 }],
    };
    const results = [
      { image_id: 1, category_id: 1, bbox: [300, 300, 5, 5], score: 0.9 },
      { image_id: 1, category_id: 1, bbox: [0, 0, 50, 50], score: 0.8 },
      { image_id: 1, category_id: 2, bbox: [0, 0, 50, 50], score: 0.99 },
    ];
    const r = evaluateCoco({ gt, results, iouType: 'bbox' });
    // maxDets=1 keeps only the 0.9 miss: AR@1 = 0; AR@10 = 1. Category 2 has no GT: -1, not averaged.
    expect(r.stats[6]).toBe(0);
    expect(r.stats[7]).toBe(1);
    expect(r.per_category.find((c) => c.category_id === 2)!.AP).toBe(-1);
    expect(r.stats[0]).toBe(r.per_category.find((c) => c.category_id === 1)!.AP);
  });
});
