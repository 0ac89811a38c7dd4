import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { isKestrelError } from '@kestrel/core';
import { mask as evalMask } from '@kestrel/eval';
import { pipeline } from '../registry.js';
import { openOnnxSession } from '../runtime/onnx.js';
import { benchCoco } from './bench.js';

const fx = (f: string): string => fileURLToPath(new URL(`../../../../test/fixtures/detect/${f}`, import.meta.url));
const red = (w: number, h: number): Promise<Buffer> => sharp({ create: { width: w, height: h, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();

// The fixtures' outputs are constants chosen in make_yolo_fixtures.py, except anchor 0's class-0 score,
// which is 0.9 x mean of the input's first (R) channel.
describe('YOLO ONNX detect fixture through pipeline("detect")', () => {
  it('decodes boxes, per-class NMS and the RGB/255 input', async () => {
    const detect = await pipeline('detect', { model: fx('yolo-detect.onnx'), labels: ['a', 'b', 'c'] });
    try {
      const [d] = await detect(await red(64, 64));
      expect(d!.map((x) => [x.label, x.categoryId])).toEqual([['a', 1], ['b', 2], ['c', 3], ['b', 2]]);
      expect(d![0]!.score).toBeCloseTo(0.9, 5); // red image: R channel = 255/255 = 1
      expect(d![0]!.bbox).toEqual([15, 15, 10, 10]);
      expect(d![1]!.bbox).toEqual([16, 15, 10, 10]);
      expect(d![1]!.score).toBeCloseTo(0.7, 6);
      expect(d![2]!.bbox).toEqual([46, 46, 8, 8]);
      expect(d![3]!.bbox).toEqual([8, 48, 4, 4]);
      expect(d![3]!.score).toBeCloseTo(0.4, 6);
      expect(detect.runtime).toBe('onnx-cpu');
      // Buffer, sharp instance and file path inputs, several per call: one list per image, same boxes.
      const dir = mkdtempSync(join(tmpdir(), 'kestrel-img-'));
      writeFileSync(join(dir, 'red.png'), await red(64, 64));
      const many = await detect([sharp(await red(64, 64)), join(dir, 'red.png')]);
      expect(many).toHaveLength(2);
      for (const m of many) expect(m.map((x) => x.bbox)).toEqual(d!.map((x) => x.bbox));
      expect(detect.timings().images).toBe(3);
    } finally {
      await detect.dispose();
    }
  });
  it('maps boxes back through the letterbox (128x64 image, gray 114 padding)', async () => {
    const detect = await pipeline('detect', { model: fx('yolo-detect.onnx'), labels: ['a', 'b', 'c'], classes: ['c'] });
    try {
      const [d] = await detect(await red(128, 64));
      // Input box [46,46,54,54]; image scaled by 0.5 and placed at top 16 -> [92, 60, 108, 76] clipped at 64.
      expect(d).toHaveLength(1);
      expect(d![0]!.bbox).toEqual([92, 60, 16, 4]);
    } finally {
      await detect.dispose();
    }
  });
  it('validates options with zod', async () => {
    await expect(pipeline('detect', { model: fx('yolo-detect.onnx'), scoreThreshold: 2 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(pipeline('detect', { model: fx('yolo-detect.onnx'), classes: ['zebra'] })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(pipeline('detect', { model: fx('nope.onnx') })).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND' });
  });
});

describe('YOLO ONNX segment fixture through pipeline("segment")', () => {
  it('returns COCO RLE masks from coefficients x prototypes', async () => {
    const seg = await pipeline('segment', { model: fx('yolo-seg.onnx'), labels: ['a', 'b'] });
    try {
      const [d] = await seg(await red(64, 64));
      expect(d!.map((x) => x.label)).toEqual(['a', 'b']);
      const m0 = evalMask.decode(d![0]!.mask);
      const m1 = evalMask.decode(d![1]!.mask);
      expect([m0.height, m0.width]).toEqual([64, 64]);
      for (let y = 0; y < 64; y++) {
        for (let x = 0; x < 64; x++) {
          expect(m0.data[y * 64 + x]).toBe(x < 32 ? 1 : 0); // p0: left half
          // p0 + p1 (each +-4): the top-left quadrant. Bilinear upsampling blurs the summed logits
          // over a 4-pixel band around the quadrant's edges, so check it outside that band.
          if (x < 28 && y < 28) expect(m1.data[y * 64 + x]).toBe(1);
          if (x >= 36 || y >= 36) expect(m1.data[y * 64 + x]).toBe(0);
        }
      }
      // Through the letterbox: a 128x64 image -> the left half of the original image.
      const [e] = await seg(await red(128, 64));
      // (Gray padding lowers the R mean, so class a now scores 0.9 * (1 + 114/255) / 2 < b's 0.8.)
      const a = e!.find((x) => x.label === 'a')!;
      expect(a.score).toBeCloseTo(0.9 * (1 + 114 / 255) / 2, 3);
      const n0 = evalMask.decode(a.mask);
      expect([n0.height, n0.width]).toEqual([64, 128]);
      expect(evalMask.area([a.mask])[0]).toBe(64 * 64);
      expect(n0.data[10 * 128 + 63]).toBe(1);
      expect(n0.data[10 * 128 + 64]).toBe(0);
    } finally {
      await seg.dispose();
    }
  });
  it('refuses to segment with a boxes-only model', async () => {
    await expect(pipeline('segment', { model: fx('yolo-detect.onnx') })).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });
});

describe('ONNX execution providers', () => {
  it('cann is unavailable in the Node binding, with an explanation', async () => {
    const e = await openOnnxSession(fx('yolo-detect.onnx'), 'cann').catch((x: unknown) => x);
    expect(isKestrelError(e, 'E_BACKEND_UNAVAILABLE')).toBe(true);
    expect((e as Error).message).toMatch(/CANN/);
  });
});

describe('bench coco with an ONNX model (no network)', () => {
  it('scores AP 1 when the ground truth is exactly what the fixture detects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kestrel-coco-'));
    mkdirSync(join(dir, 'images'));
    mkdirSync(join(dir, 'annotations'));
    writeFileSync(join(dir, 'images', 'red.png'), await red(64, 64));
    const boxes: Array<[number, number[]]> = [[1, [15, 15, 10, 10]], [2, [16, 15, 10, 10]], [3, [46, 46, 8, 8]], [2, [8, 48, 4, 4]]];
    writeFileSync(join(dir, 'annotations', 'instances_tiny.json'), JSON.stringify({
      images: [{ id: 7, file_name: 'red.png', width: 64, height: 64 }],
      categories: [{ id: 1, name: 'a' }, { id: 2, name: 'b' }, { id: 3, name: 'c' }],
      annotations: boxes.map(([c, b], i) => ({ id: i + 1, image_id: 7, category_id: c, bbox: b, area: b[2]! * b[3]!, iscrowd: 0 })),
    }));
    const results = join(dir, 'out', 'results.json');
    const r = await benchCoco({ model: fx('yolo-detect.onnx'), data: dir, results });
    // bench keeps scores down to 0.001, so anchor 4 (class c, 0.02) comes last as a false positive:
    // ranked after every true positive, it cannot lower AP.
    expect(r).toMatchObject({ images: 1, detections: 5, runtime: 'onnx-cpu' });
    expect(r.stats[0]).toBe(1); // AP
    expect(r.stats[1]).toBe(1); // AP50
    expect(r.stats[4]).toBe(-1); // no medium objects
    const written = JSON.parse(readFileSync(results, 'utf8')) as Array<{ image_id: number; category_id: number }>;
    expect(written.map((x) => [x.image_id, x.category_id])).toEqual([[7, 1], [7, 2], [7, 3], [7, 2], [7, 3]]);
  });
});

describe('ONNX cuda provider', () => {
  it('runs when the CUDA provider is installed, else fails with E_BACKEND_UNAVAILABLE', async () => {
    const r = await openOnnxSession(fx('yolo-detect.onnx'), 'cuda').then(async (o) => { await o.session.release(); return 'ok'; }, (e: unknown) => e);
    if (r !== 'ok') {
      expect(isKestrelError(r, 'E_BACKEND_UNAVAILABLE')).toBe(true);
      expect((r as Error).message).toMatch(/cpu/);
    }
  });
});
