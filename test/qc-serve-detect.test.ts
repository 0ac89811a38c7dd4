// The detect pipeline plus NG rules as an inspector (kestrel serve --pipeline detect --rules ...).
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyDetectRules, createDetectInspector } from '../packages/serve/src/detect-inspector.js';

const dets = [
  { bbox: [10, 10, 20, 20] as [number, number, number, number], score: 0.9, categoryId: 1, label: 'scratch' },
  { bbox: [100, 100, 10, 10] as [number, number, number, number], score: 0.6, categoryId: 1, label: 'scratch' },
  { bbox: [0, 0, 5, 5] as [number, number, number, number], score: 0.99, categoryId: 2, label: 'label-sticker' },
  { bbox: [50, 50, 4, 4] as [number, number, number, number], score: 0.2, categoryId: 3, label: 'dent' },
];

describe('detect rules', () => {
  it('counts NG-class detections over minScore, inside the ROI, against minCount', () => {
    expect(applyDetectRules(dets, { ngLabels: ['scratch', 'dent'], minScore: 0.5 })).toEqual({
      verdict: 'NG', score: 0.9, threshold: 0.5,
      defects: [{ label: 'scratch', score: 0.9, box: [10, 10, 20, 20] }, { label: 'scratch', score: 0.6, box: [100, 100, 10, 10] }],
    });
    expect(applyDetectRules(dets, { ngLabels: ['scratch'], minScore: 0.5, minCount: 3 }).verdict).toBe('OK');
    const roi = applyDetectRules(dets, { ngLabels: ['scratch'], minScore: 0.5, roi: [50, 50, 100, 100] });
    expect(roi.defects.map((d) => d.score)).toEqual([0.6]);
    const below = applyDetectRules(dets, { ngLabels: ['dent'], minScore: 0.5 });
    expect(below).toEqual({ verdict: 'OK', score: 0.2, threshold: 0.5, defects: [] });
    expect(applyDetectRules(dets, { ngLabels: [2] }).verdict).toBe('NG');
    expect(() => applyDetectRules(dets, { ngLabels: [] })).toThrow(/ngLabels/);
  });
});

const IMG = resolve(import.meta.dirname, '..', 'datasets/coco-val2017-128/images/000000000139.jpg');
const home = process.env.KESTREL_HOME ?? join(homedir(), '.cache', 'kestrel');
const ready = existsSync(IMG) && existsSync(join(home, 'models', 'centernet'));

describe.skipIf(!ready)('detect inspector on the real CenterNet (COCO image 139: a living room with a tv)', () => {
  it('NG when a rule class is found with its box; OK when it is absent', async () => {
    const bytes = readFileSync(IMG);
    const tv = await createDetectInspector({ model: 'centernet', rules: { ngLabels: ['tv'], minScore: 0.3 } });
    const r = await tv.inspect(bytes);
    expect(r.verdict).toBe('NG');
    expect(r.defects[0]!.label).toBe('tv');
    expect(r.defects[0]!.box).toHaveLength(4);
    expect(tv.model.version).toMatch(/^sha256:[0-9a-f]{12}\+rules:[0-9a-f]{8}$/);
    const giraffe = await createDetectInspector({ model: 'centernet', rules: { ngLabels: ['giraffe'], minScore: 0.3 } });
    expect((await giraffe.inspect(bytes)).verdict).toBe('OK');
  });
});
