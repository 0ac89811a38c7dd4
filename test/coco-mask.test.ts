// Golden cases for the mask API: outputs of pycocotools.mask (cocoapi @ 8c9bcc3) in test/fixtures/coco.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mask } from '@kestrel/eval';
import { isKestrelError } from '@kestrel/core';

const cases = JSON.parse(readFileSync(new URL('./fixtures/coco/mask_cases.json', import.meta.url), 'utf8')) as {
  encode: { name: string; mask?: number[][]; masks_HxWxN_as_list_of_masks?: number[][][]; expected: unknown }[];
  decode: { rle: mask.RLE; expected_mask: number[][] }[];
  frPyObjects: {
    name: string; input_type: string; h: number; w: number; input: unknown; expected?: unknown; expected_error?: string;
    expected_merged?: mask.CompressedRLE; expected_area_per_polygon?: number[]; expected_merged_area?: number;
    expected_if_wrapped_in_list?: unknown;
  }[];
  area: { rles: mask.RLE[]; expected: number[] }[];
  toBbox: { rles: mask.RLE[]; expected: number[][] }[];
  iou: { name: string; type: string; dt: mask.RLE[] | number[][]; gt: mask.RLE[] | number[][]; iscrowd: number[]; expected: number[][]; expected_all_noncrowd: number[][]; expected_all_crowd: number[][] }[];
  merge: { rles: mask.RLE[]; expected_union: unknown; expected_intersection: unknown; expected_union_area: number; expected_intersection_area: number }[];
};

function nested(m: { height: number; width: number; data: Uint8Array }): number[][] {
  const out: number[][] = [];
  for (let y = 0; y < m.height; y++) out.push(Array.from(m.data.subarray(y * m.width, (y + 1) * m.width)));
  return out;
}

function expectClose(actual: number[][], expected: number[][]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, i) => {
    expect(row.length).toBe(expected[i]!.length);
    row.forEach((v, j) => expect(Math.abs(v - expected[i]![j]!)).toBeLessThanOrEqual(1e-9));
  });
}

describe('mask API golden cases (pycocotools.mask)', () => {
  it('encode: row-major masks give the same compressed RLE', () => {
    for (const c of cases.encode) {
      if (c.masks_HxWxN_as_list_of_masks) {
        expect(c.masks_HxWxN_as_list_of_masks.map((m) => mask.encode(m)), c.name).toEqual(c.expected);
      } else {
        expect(mask.encode(c.mask!), c.name).toEqual(c.expected);
        // Flat row-major and column-major inputs are the same mask.
        const h = c.mask!.length, w = h ? c.mask![0]!.length : 0;
        const flat = c.mask!.flat();
        expect(mask.encode({ height: h, width: w, data: flat })).toEqual(c.expected);
        const col = new Uint8Array(h * w);
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) col[x * h + y] = c.mask![y]![x]!;
        expect(mask.encode({ height: h, width: w, data: col, order: 'column-major' })).toEqual(c.expected);
      }
    }
  });

  it('decode gives the expected masks, and encode(decode(rle)) round-trips', () => {
    for (const c of cases.decode) {
      const m = mask.decode(c.rle);
      expect(nested(m)).toEqual(c.expected_mask);
      if (typeof c.rle.counts === 'string') expect(mask.encode(m)).toEqual(c.rle);
    }
  });

  it('frPyObjects: polygons, boxes, uncompressed RLE, and the inputs pycocotools rejects', () => {
    for (const c of cases.frPyObjects) {
      if (c.expected_error) {
        if (c.input_type === 'single_polygon') {
          expect(() => mask.frPyObjects(c.input as number[][], c.h, c.w), c.name).toThrow();
          try { mask.frPyObjects(c.input as number[][], c.h, c.w); } catch (e) { expect(isKestrelError(e, 'E_COCO_FORMAT')).toBe(true); }
          expect(mask.frPyObjects([c.input as number[]], c.h, c.w)).toEqual(c.expected_if_wrapped_in_list);
        } else {
          // A list of boxes: pycocotools wants a numpy array there; as an array of boxes it is the bbox path.
          expect(c.input_type).toBe('list_of_bbox_lists');
          const boxes = mask.frBboxes(c.input as number[][], c.h, c.w);
          expect(boxes.length).toBe((c.input as number[][]).length);
        }
        continue;
      }
      const got = mask.frPyObjects(c.input as never, c.h, c.w);
      expect(got, c.name).toEqual(c.expected);
      if (c.expected_merged) {
        const rles = got as mask.CompressedRLE[];
        expect(mask.merge(rles)).toEqual(c.expected_merged);
        expect(mask.area(rles)).toEqual(c.expected_area_per_polygon);
        expect(mask.area([mask.merge(rles)])[0]).toBe(c.expected_merged_area);
      }
    }
  });

  it('area and toBbox', () => {
    for (const c of cases.area) expect(mask.area(c.rles)).toEqual(c.expected);
    for (const c of cases.toBbox) expectClose(mask.toBbox(c.rles), c.expected);
  });

  it('iou with and without crowd, for RLEs and boxes', () => {
    for (const c of cases.iou) {
      expectClose(mask.iou(c.dt, c.gt, c.iscrowd), c.expected);
      expectClose(mask.iou(c.dt, c.gt, c.gt.map(() => 0)), c.expected_all_noncrowd);
      expectClose(mask.iou(c.dt, c.gt, c.gt.map(() => 1)), c.expected_all_crowd);
    }
  });

  it('merge: union and intersection', () => {
    for (const c of cases.merge) {
      const u = mask.merge(c.rles), i = mask.merge(c.rles, true);
      expect(u).toEqual(c.expected_union);
      expect(i).toEqual(c.expected_intersection);
      expect(mask.area([u])[0]).toBe(c.expected_union_area);
      expect(mask.area([i])[0]).toBe(c.expected_intersection_area);
    }
  });

  it('RLEs whose runs do not add up to h*w terminate (maskApi.c would loop forever)', () => {
    const short = { size: [10, 10] as [number, number], counts: [0, 48] };
    const full = { size: [10, 10] as [number, number], counts: [0, 50, 50] };
    expect(mask.iou([short], [full], [0])[0]![0]).toBeGreaterThan(0);
    expect(mask.merge([short, full]).size).toEqual([10, 10]);
    expect(mask.merge([full, short], true).size).toEqual([10, 10]);
  });

  it('string form round-trips large counts and negative deltas', () => {
    const R = { h: 3000, w: 4000, cnts: Uint32Array.from([5_000_000, 1, 2_000_000, 7, 4_999_992 - 2, 0]) };
    const s = mask.rleToString(R);
    expect(Array.from(mask.rleFrString(s, 3000, 4000).cnts)).toEqual(Array.from(R.cnts));
  });
});
