import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { letterboxGeometry, unletterboxBox, iou, nms, type Candidate } from './geometry.js';
import { COCO80_LABELS, COCO80_TO_91 } from './coco-classes.js';

describe('letterbox geometry', () => {
  it('fits a landscape COCO image into 512x512, centred vertically', () => {
    // 640x426 -> r = 0.8, 512x340.8 -> 341 rows, pad (512-341)/2 = 85.5 -> round(85.4) = 85 on top.
    const g = letterboxGeometry(640, 426, 512, 512);
    expect(g).toMatchObject({ width: 512, height: 341, left: 0, top: 85 });
  });
  it('fits a portrait image, centred horizontally (Ultralytics rounding)', () => {
    // 480x640 into 640x640: r = 1, width 480, left = round(80 - 0.1) = 80.
    expect(letterboxGeometry(480, 640, 640, 640)).toMatchObject({ width: 480, height: 640, left: 80, top: 0 });
    // Odd padding: 100x101 into 64x64: r = 64/101, width round(63.37) = 63, left round(0.4) = 0.
    expect(letterboxGeometry(100, 101, 64, 64)).toMatchObject({ width: 63, height: 64, left: 0, top: 0 });
  });
  it('maps input-pixel boxes back to original pixels and clips them', () => {
    const g = letterboxGeometry(128, 64, 64, 64); // r 0.5: 64x32 at top 16
    expect(g).toMatchObject({ width: 64, height: 32, left: 0, top: 16 });
    // [46,46,54,54] -> x 92..108, y (46-16)/0.5 = 60 .. (54-16)/0.5 = 76 -> clipped to 64.
    expect(unletterboxBox(g, 46, 46, 54, 54)).toEqual([92, 60, 16, 4]);
    // A box in the padding maps to an empty box at the border, never negative.
    const b = unletterboxBox(g, 10, 0, 20, 10);
    expect(b[1]).toBe(0);
    expect(b[3]).toBe(0);
  });
  it('round-trips: original box -> input -> original', () => {
    const g = letterboxGeometry(640, 426, 512, 512);
    const s = g.width / 640;
    const box = [100, 50, 300, 400];
    const back = unletterboxBox(g, box[0]! * s + g.left, box[1]! * (g.height / 426) + g.top, box[2]! * s + g.left, box[3]! * (g.height / 426) + g.top);
    expect(back[0]).toBeCloseTo(100, 9);
    expect(back[1]).toBeCloseTo(50, 9);
    expect(back[2]).toBeCloseTo(200, 9);
    expect(back[3]).toBeCloseTo(350, 9);
  });
});

describe('iou and nms', () => {
  it('computes IoU of corner boxes', () => {
    expect(iou([0, 0, 10, 10], [0, 0, 10, 10])).toBe(1);
    expect(iou([0, 0, 10, 10], [5, 0, 15, 10])).toBeCloseTo(50 / 150, 12);
    expect(iou([0, 0, 10, 10], [10, 0, 20, 10])).toBe(0);
  });
  const c = (box: [number, number, number, number], score: number, cls: number, index: number): Candidate => ({ box, score, cls, index });
  it('suppresses same-class overlaps only, best first, capped', () => {
    const cands = [
      c([0, 0, 10, 10], 0.5, 0, 0),
      c([1, 0, 11, 10], 0.9, 0, 1), // IoU 0.818 with box 0
      c([1, 0, 11, 10], 0.7, 1, 2), // other class: kept
      c([50, 50, 60, 60], 0.6, 0, 3),
    ];
    expect(nms(cands, 0.6, 100).map((k) => k.index)).toEqual([1, 2, 3]);
    expect(nms(cands, 0.9, 100).map((k) => k.index)).toEqual([1, 2, 3, 0]);
    expect(nms(cands, 0.6, 2).map((k) => k.index)).toEqual([1, 2]);
    expect(nms(cands, 0.6, 100, false).map((k) => k.index)).toEqual([1, 3]);
  });
});

describe('COCO class mapping', () => {
  it('matches the categories of the bundled instances JSON (80 -> 91 ids, names)', () => {
    const j = JSON.parse(readFileSync(new URL('../../../../datasets/coco-val2017-128/annotations/instances_val2017_128.json', import.meta.url), 'utf8')) as { categories: Array<{ id: number; name: string }> };
    expect(COCO80_TO_91).toHaveLength(80);
    expect(j.categories.map((x) => x.id)).toEqual([...COCO80_TO_91]);
    expect(j.categories.map((x) => x.name)).toEqual([...COCO80_LABELS]);
  });
});

describe('masks back to the image as COCO RLE', () => {
  it('undoes the letterbox with nearest sampling and encodes column-major RLE', async () => {
    const { unletterboxMask, maskToRle } = await import('./masks.js');
    // 4x2 image in a 4x4 input: slot rows 1..2. Input mask marks the slot's left half.
    const g = letterboxGeometry(4, 2, 4, 4);
    expect(g).toMatchObject({ width: 4, height: 2, left: 0, top: 1 });
    const m = new Uint8Array(16);
    m[4] = m[5] = m[8] = m[9] = 1;
    m[0] = 1; // in the padding: must not leak into the image
    expect(Array.from(unletterboxMask(m, g))).toEqual([1, 1, 0, 0, 1, 1, 0, 0]);
    // Column-major runs: 4 ones then 4 zeros -> counts [0, 4, 4] -> "044" in COCO's ASCII form.
    expect(maskToRle(m, g)).toEqual({ size: [2, 4], counts: '044' });
    // pycocotools: mask [[0,1],[1,1]] -> column-major 0,1,1,1 -> counts [1, 3] -> "13".
    const g2 = letterboxGeometry(2, 2, 2, 2);
    expect(maskToRle(new Uint8Array([0, 1, 1, 1]), g2)).toEqual({ size: [2, 2], counts: '13' });
  });
});
