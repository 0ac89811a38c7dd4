import { describe, expect, it } from 'vitest';
import { decodeCenterNet } from './centernet.js';
import { decodeNanoDet, nanodetInput, NANODET_BINS } from './nanodet.js';
import { decodeYolo, yoloMask } from './yolo.js';

const S = { scoreThreshold: 0.05, iou: 0.6, maxDetections: 100 };

describe('CenterNet decoding', () => {
  it('reads [x1,y1,x2,y2,score,class] rows, filters by score/class, sorts, caps', () => {
    const out = new Float32Array([
      10, 20, 30, 40, 0.5, 3,
      1, 2, 3, 4, 0.9, 0,
      0, 0, 5, 5, 0.01, 7,
      5, 5, 9, 9, 0.2, 79,
    ]);
    const d = decodeCenterNet(out, S);
    expect(d.map((x) => [x.cls, x.score])).toEqual([[0, Math.fround(0.9)], [3, 0.5], [79, Math.fround(0.2)]]);
    expect(d[1]!.box).toEqual([10, 20, 30, 40]);
    expect(decodeCenterNet(out, { ...S, classes: new Set([3]) }).map((x) => x.cls)).toEqual([3]);
    expect(decodeCenterNet(out, { ...S, maxDetections: 1 })).toHaveLength(1);
  });
});

describe('NanoDet', () => {
  it('packs RGB HWC bytes into normalised BGR CHW', () => {
    const x = nanodetInput(new Uint8Array([200, 100, 50]), 1);
    expect(x[0]).toBeCloseTo((50 - 103.53) / 57.375, 6); // B
    expect(x[1]).toBeCloseTo((100 - 116.28) / 57.12, 6); // G
    expect(x[2]).toBeCloseTo((200 - 123.675) / 58.395, 6); // R
  });
  it('decodes the GFL distribution: expected bin x stride around the cell centre', () => {
    // One 2x2 level at stride 8, 2 classes. Cell 3 (col 1, row 1): centre (12, 12).
    const nc = 2;
    const scores = new Float32Array(4 * nc);
    scores[3 * nc + 1] = 0.8;
    const dists = new Float32Array(4 * 4 * NANODET_BINS).fill(-50);
    // Left: all mass on bin 1; top: bin 2; right: half on 0 and 2 (-> 1); bottom: bin 0.
    const o = 3 * 4 * NANODET_BINS;
    dists[o + 1] = 50;
    dists[o + NANODET_BINS + 2] = 50;
    dists[o + 2 * NANODET_BINS] = 50; dists[o + 2 * NANODET_BINS + 2] = 50;
    dists[o + 3 * NANODET_BINS] = 50;
    const d = decodeNanoDet([{ stride: 8, grid: 2, scores, dists }], nc, S);
    expect(d).toHaveLength(1);
    expect(d[0]!.cls).toBe(1);
    expect(d[0]!.box[0]).toBeCloseTo(12 - 8, 4);
    expect(d[0]!.box[1]).toBeCloseTo(12 - 16, 4);
    expect(d[0]!.box[2]).toBeCloseTo(12 + 8, 4);
    expect(d[0]!.box[3]).toBeCloseTo(12, 4);
  });
  it('applies per-class NMS at the given IoU', () => {
    const nc = 1;
    const scores = new Float32Array([0.9, 0.8, 0, 0]);
    const dists = new Float32Array(4 * 4 * NANODET_BINS).fill(-50);
    for (const cell of [0, 1]) for (let s = 0; s < 4; s++) dists[cell * 44 + s * NANODET_BINS + 10] = 50; // 10 bins each side: big boxes
    // Cells 0 and 1 are 8 px apart with 160 px boxes: IoU ~ 0.95.
    expect(decodeNanoDet([{ stride: 8, grid: 2, scores, dists }], nc, S)).toHaveLength(1);
    expect(decodeNanoDet([{ stride: 8, grid: 2, scores, dists }], nc, { ...S, iou: 0.99 })).toHaveLength(2);
  });
});

describe('YOLO decoding', () => {
  it('reads the channel-major [4+nc, N] head (cx,cy,w,h + scores), best class per anchor', () => {
    const n = 2, nc = 2;
    // anchor 0: box centre (10,10) 4x6, scores 0.2 / 0.7; anchor 1: scores 0.01 / 0.02.
    const out = new Float32Array([10, 30, 10, 30, 4, 2, 6, 2, 0.2, 0.01, 0.7, 0.02]);
    const d = decodeYolo(out, 4 + nc, n, nc, S);
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ cls: 1, index: 0, box: [8, 7, 12, 13] });
    expect(d[0]!.score).toBeCloseTo(0.7, 6);
  });
  it('builds masks from coefficients x prototypes, upsampled and cropped to the box', () => {
    // 2 prototypes 2x2: p0 = +1 left column, -1 right; input 4x4.
    const protos = new Float32Array([1, -1, 1, -1, 0, 0, 0, 0]);
    const full = yoloMask([1, 0], protos, 2, 2, [0, 0, 4, 4], 4, 4);
    expect(Array.from(full)).toEqual([1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
    const cropped = yoloMask([1, 0], protos, 2, 2, [1, 0, 4, 2], 4, 4);
    expect(Array.from(cropped)).toEqual([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('person mask decoding (selfie)', () => {
  it('thresholds at 0.5, boxes the mask, scores by mean probability', async () => {
    const { decodePersonMask } = await import('./selfie.js');
    const p = new Float32Array(16);
    p[5] = 0.9; p[6] = 0.7; p[10] = 0.5; // 0.5 is not over the threshold
    const r = decodePersonMask(p, 4, S);
    expect(r.cands).toHaveLength(1);
    expect(r.cands[0]!.box).toEqual([1, 1, 3, 2]);
    expect(r.cands[0]!.score).toBeCloseTo(0.8, 6);
    expect(Array.from(r.masks[0]!)).toEqual([0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(decodePersonMask(new Float32Array(16), 4, S).cands).toHaveLength(0);
  });
});
