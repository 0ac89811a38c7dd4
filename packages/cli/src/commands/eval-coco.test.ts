import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isKestrelError, type KestrelError } from '@kestrel/core';
import type { CommandContext } from '../command.js';
import { runCommand, captureStream as sink } from '../testing/run-command.js';
import { commands } from './eval-coco.js';
import { commands as benchCommands } from './bench-eval.js';

const fx = (f: string): string => fileURLToPath(new URL(`../../../../test/fixtures/coco/${f}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kestrel-coco-cli-'));
const file = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p; };
const cmd = commands[0]!;

const run = async (values: CommandContext['values'], json = true): Promise<string> => (await runCommand(cmd, values, [], json)).out;

async function failure(values: CommandContext['values']): Promise<KestrelError> {
  try { await run(values); } catch (e) { if (isKestrelError(e)) return e; throw e; }
  throw new Error('expected a KestrelError');
}

const base = { gt: fx('det_gt.json'), results: fx('det_res_bbox.json'), 'iou-type': 'bbox' };

describe('kestrel eval coco', () => {
  it('--json prints stats identical to pycocotools; --full adds precision/recall in pycocotools layout', async () => {
    const exp = JSON.parse(readFileSync(fx('det_expected_bbox_default.json'), 'utf8')) as { stats: number[]; summary_text: string; precision_shape: number[] };
    const r = JSON.parse(await run(base)) as { stats: number[]; precision?: unknown; per_category: unknown[]; summary: string };
    r.stats.forEach((v, i) => expect(Math.abs(v - exp.stats[i]!)).toBeLessThanOrEqual(1e-9));
    expect(r.precision).toBeUndefined();
    expect(r.per_category.length).toBe((JSON.parse(readFileSync(fx('det_gt.json'), 'utf8')) as { categories: unknown[] }).categories.length);
    expect(r.summary).toBe(exp.summary_text);
    const f = JSON.parse(await run({ ...base, full: true })) as { precision: unknown[][][][][]; recall: unknown[][][][] };
    expect([f.precision.length, f.precision[0]!.length, f.precision[0]![0]!.length, f.precision[0]![0]![0]!.length, f.precision[0]![0]![0]![0]!.length]).toEqual(exp.precision_shape);
    expect(f.recall.length).toBe(10);
  });

  it('without --json prints the 12-line pycocotools summary', async () => {
    const exp = JSON.parse(readFileSync(fx('det_expected_bbox_default.json'), 'utf8')) as { summary_text: string };
    expect(await run(base, false)).toBe(exp.summary_text);
  });

  it('--params overrides pycocotools Params fields by name (every golden case with overrides)', async () => {
    const { cases } = JSON.parse(readFileSync(fx('det_cases.json'), 'utf8')) as { cases: { gt: string; res: string; iouType: string; params_override: object; expected: string }[] };
    const withParams = cases.filter((c) => Object.keys(c.params_override).length > 0);
    expect(withParams.length).toBeGreaterThan(0);
    for (const c of withParams) {
      const exp = JSON.parse(readFileSync(fx(c.expected), 'utf8')) as { stats: number[] };
      const params = file('params.json', JSON.stringify(c.params_override));
      const r = JSON.parse(await run({ gt: fx(c.gt), results: fx(c.res), 'iou-type': c.iouType, params })) as { stats: number[] };
      expect(r.stats.length).toBe(exp.stats.length);
      r.stats.forEach((v, i) => expect(Math.abs(v - exp.stats[i]!)).toBeLessThanOrEqual(1e-9));
    }
    expect((await failure({ ...base, params: file('p2.json', '{"maxDet": [1]}') })).code).toBe('E_OPTIONS');
    expect((await failure({ ...base, params: file('p3.json', '{"iouThrs": "x"}') })).code).toBe('E_OPTIONS');
  });

  it('bad input is E_COCO_FORMAT with the JSON path of the bad field, never a crash', async () => {
    const gt = JSON.parse(readFileSync(fx('det_gt.json'), 'utf8')) as { annotations: Record<string, unknown>[]; images: { id: number }[] };
    const cases: [Record<string, string>, string][] = [
      [{ results: file('notjson.json', '{"a": ') }, 'not valid JSON'],
      [{ gt: file('arr.json', '[]') }, '$'],
      [{ results: file('unknown-img.json', JSON.stringify([{ image_id: -5, category_id: 1, bbox: [0, 0, 1, 1], score: 1 }])) }, '$[0].image_id'],
      [{ results: file('bad-box.json', JSON.stringify([{ image_id: gt.images[0]!.id, category_id: 1, bbox: [0, 0, 'w', 1], score: 1 }])) }, '$[0].bbox[2]'],
      [{ results: file('no-score.json', JSON.stringify([{ image_id: gt.images[0]!.id, category_id: 1, bbox: [0, 0, 1, 1] }])) }, '$[0].score'],
      [{ results: file('obj.json', '{"image_id": 1}') }, '$'],
      [{ gt: file('bad-ann.json', JSON.stringify({ ...gt, annotations: gt.annotations.map((a, i) => (i === 3 ? { ...a, category_id: '1' } : a)) })) }, '$.annotations[3].category_id'],
      [{ gt: file('no-area.json', JSON.stringify({ ...gt, annotations: gt.annotations.map((a) => { const { area: _a, ...rest } = a; return rest; }) })) }, '.area'],
    ];
    for (const [over, path] of cases) {
      const e = await failure({ ...base, ...over });
      expect(e.code, path).toBe('E_COCO_FORMAT');
      expect(e.message).toContain(path);
    }
    // A result RLE whose runs do not cover the image exactly (pycocotools would hang on it).
    const img = gt.images[0]! as { id: number; height: number; width: number };
    const badRle = file('bad-rle.json', JSON.stringify([{ image_id: img.id, category_id: 1, score: 1, segmentation: { size: [img.height, img.width], counts: [0, 5] } }]));
    const e = await failure({ ...base, results: badRle, 'iou-type': 'segm' });
    expect(e.code).toBe('E_COCO_FORMAT');
    expect(e.message).toContain('$[0].segmentation.counts');
    expect((await failure({ ...base, 'iou-type': 'mask' })).code).toBe('E_OPTIONS');
    expect((await failure({ gt: base.gt })).code).toBe('E_OPTIONS');
  });

  it('segm and keypoints cases run through the CLI', async () => {
    const s = JSON.parse(await run({ gt: fx('det_gt.json'), results: fx('det_res_segm.json'), 'iou-type': 'segm' })) as { stats: number[] };
    const se = JSON.parse(readFileSync(fx('det_expected_segm_default.json'), 'utf8')) as { stats: number[] };
    s.stats.forEach((v, i) => expect(Math.abs(v - se.stats[i]!)).toBeLessThanOrEqual(1e-9));
    const k = JSON.parse(await run({ gt: fx('kp_gt.json'), results: fx('kp_res.json'), 'iou-type': 'keypoints' })) as { stats: number[] };
    expect(k.stats.length).toBe(10);
  });
});

describe('kestrel eval coco on means over more than 8,192 values (test/fixtures/coco-8192)', () => {
  const fx8 = (f: string): string => fileURLToPath(new URL(`../../../../test/fixtures/coco-8192/${f}`, import.meta.url));
  const { cases } = JSON.parse(readFileSync(fx8('cases.json'), 'utf8')) as { cases: { name: string; gt: string; res: string; params_override: object; stats: number[]; stats_pairwise: number[] }[] };
  const c = cases.find((x) => x.name === 'bbox_usecats0_imgids_rec1001')!;
  const unzip = (f: string): string => file(f.replace(/\.gz$/, ''), gunzipSync(readFileSync(fx8(f))).toString('utf8'));
  const values = { gt: unzip(c.gt), results: unzip(c.res), 'iou-type': 'bbox', params: file('p8192.json', JSON.stringify(c.params_override)) };

  it('--json stats === pycocotools (numpy 1.24.2); --numpy-sum pairwise === pycocotools on numpy 2.4.6', { timeout: 60_000 }, async () => {
    expect(c.stats.some((s, i) => s !== c.stats_pairwise[i])).toBe(true);
    expect((JSON.parse(await run(values)) as { stats: number[] }).stats).toEqual(c.stats);
    expect((JSON.parse(await run({ ...values, 'numpy-sum': 'blocked' })) as { stats: number[] }).stats).toEqual(c.stats);
    expect((JSON.parse(await run({ ...values, 'numpy-sum': 'pairwise' })) as { stats: number[] }).stats).toEqual(c.stats_pairwise);
    const e = await failure({ ...values, 'numpy-sum': 'numpy2' });
    expect(e.code).toBe('E_OPTIONS');
    expect(e.message).toContain('pairwise');
  });
});

describe('kestrel bench eval', () => {
  it('runs a small seeded case in-process and reports time and stats', async () => {
    const out = sink();
    await benchCommands[0]!.run({ values: { scale: '0.02', runs: '1', 'in-process': true }, positionals: [], json: true, debug: false, out: out.stream, err: sink().stream });
    const r = JSON.parse(out.text()) as { mode: string; seconds: number; stats: number[]; size: { images: number } };
    expect(r.mode).toBe('in-process');
    expect(r.size.images).toBe(100);
    expect(r.seconds).toBeGreaterThan(0);
    expect(r.stats.length).toBe(12);
    expect(r.stats[0]).toBeGreaterThan(0);
  });
});
