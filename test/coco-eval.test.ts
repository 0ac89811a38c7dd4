// Golden detection / segmentation / keypoint cases: outputs of pycocotools COCOeval (cocoapi @ 8c9bcc3)
// on the GT and results files in test/fixtures/coco. Every number agrees exactly (=== / difference 0).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COCO, COCOeval, evaluateCoco, type IouType } from '@kestrel/eval';
import { isKestrelError } from '@kestrel/core';

const dir = new URL('./fixtures/coco/', import.meta.url);
const load = (f: string): unknown => JSON.parse(readFileSync(new URL(f, dir), 'utf8'));

interface Case { name: string; iouType: IouType; gt: string; res: string; params_override: Record<string, unknown>; expected: string }
interface Expected { params: Record<string, unknown>; stats: number[]; precision: unknown; precision_shape: number[]; recall: unknown; recall_shape: number[]; summary_text: string }

const { cases } = load('det_cases.json') as { cases: Case[] };

function flat(a: unknown): number[] {
  return Array.isArray(a) ? a.flatMap(flat) : [a as number];
}

function shape(a: unknown): number[] {
  const s: number[] = [];
  let x = a;
  while (Array.isArray(x)) { s.push(x.length); x = x[0]; }
  return s;
}

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('COCOeval golden cases', () => {
  it('covers all 8 public cases', () => expect(cases.length).toBe(8));

  for (const c of cases) {
    it(`${c.name}: stats, precision, recall, summary text and params match pycocotools`, () => {
      const exp = load(c.expected) as Expected;
      const r = evaluateCoco({ gt: load(c.gt), results: load(c.res), iouType: c.iouType, params: c.params_override, full: true });
      expect(r.stats.length).toBe(c.iouType === 'keypoints' ? 10 : 12);
      expect(r.stats).toEqual(exp.stats);
      expect(shape(r.precision)).toEqual(exp.precision_shape);
      expect(shape(r.recall)).toEqual(exp.recall_shape);
      expect(maxAbsDiff(flat(r.precision), flat(exp.precision))).toBe(0);
      expect(maxAbsDiff(flat(r.recall), flat(exp.recall))).toBe(0);
      expect(r.summary).toBe(exp.summary_text);
      expect(JSON.parse(JSON.stringify(r.params))).toEqual(exp.params);
    });
  }

  it('the class API (COCO / loadRes / COCOeval) gives the same stats as evaluateCoco', () => {
    const gt = new COCO(load('det_gt.json'), 'det_gt.json');
    const dt = gt.loadRes(load('det_res_bbox.json'));
    const E = new COCOeval(gt, dt, 'bbox');
    E.evaluate(); E.accumulate();
    const exp = load('det_expected_bbox_default.json') as Expected;
    expect(E.summarize()).toEqual(exp.stats);
    expect(E.summaryLines.join('\n') + '\n').toBe(exp.summary_text);
  });

  it('loadRes numbers results 1..N and derives area as pycocotools does', () => {
    const gt = new COCO(load('det_gt.json'));
    const bb = gt.loadRes(load('det_res_bbox.json'));
    const first = bb.annotations[0]!;
    expect(first.id).toBe(1);
    expect(bb.annotations.at(-1)!.id).toBe(bb.annotations.length);
    expect(first.area).toBe(first.bbox![2]! * first.bbox![3]!);
    const kp = new COCO(load('kp_gt.json')).loadRes(load('kp_res.json'));
    const a = kp.annotations[0]!;
    const xs = a.keypoints!.filter((_, i) => i % 3 === 0), ys = a.keypoints!.filter((_, i) => i % 3 === 1);
    expect(a.bbox).toEqual([Math.min(...xs), Math.min(...ys), Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)]);
  });

  it('per-category AP: -1 for a category without GT, 0 for one with GT but no detections', () => {
    const gt = load('det_gt.json') as { categories: { id: number }[]; annotations: { category_id: number; iscrowd?: number }[] };
    const res = load('det_res_bbox.json') as { category_id: number }[];
    const r = evaluateCoco({ gt, results: res, iouType: 'bbox' });
    expect(r.per_category.map((p) => p.category_id)).toEqual(gt.categories.map((c) => c.id).sort((a, b) => a - b));
    const withGt = new Set(gt.annotations.filter((a) => !a.iscrowd).map((a) => a.category_id));
    const detected = new Set(res.map((d) => d.category_id));
    let checked = 0;
    for (const p of r.per_category) {
      if (!withGt.has(p.category_id)) { expect(p.AP).toBe(-1); checked++; }
      else if (!detected.has(p.category_id)) { expect(p.AP).toBe(0); checked++; }
      else expect(p.AP).toBeGreaterThanOrEqual(0);
    }
    expect(checked).toBeGreaterThan(0);
  });

  it('results for an image that is not in the GT are rejected with the JSON path', () => {
    const res = structuredClone(load('det_res_bbox.json')) as { image_id: number }[];
    res[5]!.image_id = 999_999_999;
    try {
      evaluateCoco({ gt: load('det_gt.json'), results: res, iouType: 'bbox' });
      expect.unreachable();
    } catch (e) {
      expect(isKestrelError(e, 'E_COCO_FORMAT')).toBe(true);
      expect((e as Error).message).toContain('$[5].image_id');
    }
  });

  it('empty results give 0 AP where GT exists (pycocotools itself would fail on an empty list)', () => {
    const r = evaluateCoco({ gt: load('det_gt.json'), results: [], iouType: 'bbox' });
    expect(r.stats[0]).toBe(0);
  });
});
