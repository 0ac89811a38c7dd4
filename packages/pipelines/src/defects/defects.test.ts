import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isKestrelError } from '@kestrel/core';
import { pipeline } from '../registry.js';
import { benchDefects, trainAnomaly, trainDefects } from './index.js';

const fixtures = fileURLToPath(new URL('../../../../test/fixtures/qc/', import.meta.url));
const codeOf = async (p: Promise<unknown>): Promise<string> => p.then(() => 'no error', (e) => (isKestrelError(e) ? e.code : String(e)));

describe('defects: supervised on an ELPV subset', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'kestrel-defects-')), 'model');

  it('trains with a holdout and a target-FPR threshold, then benches the holdout', async () => {
    const r = await trainDefects({ data: join(fixtures, 'elpv'), out, holdout: 0.2, calibrationFraction: 0.25, targetFpr: 0, l2Grid: [0.1], steps: 100, size: 96 });
    expect(r.layout).toBe('elpv');
    expect(r.holdout).toBe(2); // one cell of each class
    const held = readFileSync(join(out, 'holdout.txt'), 'utf8').trim().split('\n');
    expect(held).toHaveLength(2);
    // target FPR 0: no calibration negative may score at or above the threshold.
    const at = r.meta.calibration.atThreshold as { fp: number; negatives: number };
    expect(at.fp).toBe(0);
    expect(at.negatives).toBe(1);
    const bench = await benchDefects({ model: out, data: join(fixtures, 'elpv'), files: join(out, 'holdout.txt') });
    expect(bench.n).toBe(2);
    expect(bench.kind).toBe('classifier');
    expect(bench.threshold).toBe(r.meta.threshold);
    const defects = await pipeline('defects', { model: out });
    const v = await defects(join(fixtures, 'elpv', held[0]!));
    expect(v.threshold).toBe(r.meta.threshold);
    expect(v.defective).toBe(v.score >= v.threshold);
    expect(v.heatmap).toBeUndefined();
  });

  it('refuses the X-ray layout and a file list naming unknown images', async () => {
    expect(await codeOf(trainDefects({ data: join(fixtures, 'pneumoniamnist'), out: join(tmpdir(), 'x') }))).toBe('E_DATA_FORMAT');
    expect(await codeOf(benchDefects({ model: out, data: join(fixtures, 'elpv'), files: join(fixtures, 'README.md') }))).toBe('E_DATA_FORMAT');
    // A defects model given to the xray pipeline: the user picked the wrong model.
    expect(await codeOf(pipeline('xray', { model: out }))).toBe('E_OPTIONS');
  });
});

describe('defects: anomaly mode on magnetic-tile defect-free images', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'kestrel-anomaly-')), 'model');

  it('builds a memory from good images only, calibrates, scores with a heat map', async () => {
    const r = await trainAnomaly({ good: join(fixtures, 'magnetic-tile'), out, holdout: 0.2, calibrationFraction: 0.25, targetFpr: 0, memorySize: 200, candidatesPerImage: 64, size: 128 });
    // 12 good: 2 held out, 3 calibrate, 7 build the memory; the 5 defective rows are only listed.
    expect(r.meta.training.memoryImages).toBe(7);
    expect(r.meta.calibration.n).toBe(3);
    expect(r.meta.calibration.fp).toBe(0);
    expect(r.meta.training.memoryPatches).toBe(200);
    expect(r.holdout).toBe(7);
    const held = readFileSync(join(out, 'holdout.txt'), 'utf8').trim().split('\n');
    expect(held.filter((h) => h.startsWith('MT_Free/'))).toHaveLength(2);
    expect(existsSync(join(out, 'weights.safetensors'))).toBe(true);

    const defects = await pipeline('defects', { model: out });
    const v = await defects(join(fixtures, 'magnetic-tile', held[held.length - 1]!));
    expect(v.heatmap!.width).toBe(16); // 128 px / stride 8
    expect(v.heatmap!.data).toHaveLength(256);
    // The image score is the heat map's maximum inside the 2-cell border.
    const inner: number[] = [];
    for (let y = 2; y < 14; y++) for (let x = 2; x < 14; x++) inner.push(v.heatmap!.data[y * 16 + x]!);
    expect(r.meta.patches.border).toBe(2);
    expect(v.score).toBeCloseTo(Math.max(...inner), 5);
    expect(v.defective).toBe(v.score >= v.threshold);

    const bench = await benchDefects({ model: out, data: join(fixtures, 'magnetic-tile'), files: join(out, 'holdout.txt') });
    expect(bench.kind).toBe('anomaly');
    expect(bench.n).toBe(7);
    expect(bench.negatives).toBe(2);
    expect(bench.layout).toBe('magnetic-tile');
  });

  it('needs enough good images', async () => {
    expect(await codeOf(trainAnomaly({ good: join(fixtures, 'elpv'), out: join(tmpdir(), 'y') }))).toBe('E_DATA_FORMAT');
  });
});
