import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CommandContext, CommandSpec } from '../command.js';
import { runCommand, errorCode as code } from '../testing/run-command.js';
import { commands as claimsCommands } from './claims.js';
import { commands as captionCommands } from './eval-captions.js';

const runCmd = (cmd: CommandSpec, values: CommandContext['values'], json = true): Promise<{ out: string; err: string }> => runCommand(cmd, values, [], json);

const dir = mkdtempSync(join(tmpdir(), 'kestrel-claims-'));
const file = (name: string, text: string): string => { const p = join(dir, name); writeFileSync(p, text); return p; };
const claims = claimsCommands[0]!;
const captions = captionCommands[0]!;

describe('kestrel claims', () => {
  it('--fpr 7.2e-6: exact one-sided, rule of three and two-sided counts', async () => {
    const { out } = await runCmd(claims, { fpr: '7.2e-6' });
    const r = JSON.parse(out) as { requirement: { partsNeeded: Record<string, number> } };
    // ln 0.05 / ln(1 − 7.2e-6) = 416072.6 → 416073; 3 / 7.2e-6 = 416666.7 → 416667; ln 0.025 / ln(1 − p) = 512342.4 → 512343
    expect(r.requirement.partsNeeded).toEqual({ clopperPearsonOneSided: 416073, ruleOfThree: 416667, clopperPearsonTwoSided: 512343 });
    const text = await runCmd(claims, { fpr: '7.2e-6' }, false);
    expect(text.out).toMatch(/416,073/);
    expect(text.out).toMatch(/rule of three/);
  });
  it('--bench file and --fp/--negatives give the same Clopper-Pearson range', async () => {
    const a = JSON.parse((await runCmd(claims, { bench: file('b.json', '{"fp": 3, "tn": 997, "accuracy": 0.9}') })).out);
    const b = JSON.parse((await runCmd(claims, { fp: '3', negatives: '1000' })).out);
    const c = JSON.parse((await runCmd(claims, { bench: file('c.json', '{"confusion": {"fp": 3, "tn": 997, "tp": 5, "fn": 1}}') })).out);
    expect(a).toEqual(b);
    expect(c).toEqual(b);
    // The bounds solve P(X >= 3 | lower) = 0.025 and P(X <= 3 | upper) = 0.025 for X ~ Bin(1000, p).
    const pmf = (j: number, p: number): number => {
      let lc = 0;
      for (let i = 1; i <= j; i++) lc += Math.log(1000 - j + i) - Math.log(i);
      return Math.exp(lc + j * Math.log(p) + (1000 - j) * Math.log1p(-p));
    };
    const cdf3 = (p: number): number => pmf(0, p) + pmf(1, p) + pmf(2, p) + pmf(3, p);
    const [lo, hi] = b.evidence.interval as [number, number];
    expect(Math.abs(1 - (pmf(0, lo) + pmf(1, lo) + pmf(2, lo)) - 0.025)).toBeLessThan(1e-12);
    expect(Math.abs(cdf3(hi) - 0.025)).toBeLessThan(1e-12);
    expect(Math.abs(cdf3(b.evidence.upperOneSided) - 0.05)).toBeLessThan(1e-12);
  });
  it('zero false alarms in n parts: upper bounds are 1 − 0.025^(1/n) and 1 − 0.05^(1/n); claim check', async () => {
    const r = JSON.parse((await runCmd(claims, { fp: '0', negatives: '1000', fpr: '7.2e-6' })).out);
    expect(r.evidence.interval[1]).toBeCloseTo(1 - 0.025 ** (1 / 1000), 15);
    expect(r.evidence.upperOneSided).toBeCloseTo(1 - 0.05 ** (1 / 1000), 15);
    expect(r.evidence.claimSupported).toBe(false);
    expect(r.evidence.additionalCleanPartsNeeded).toBe(416073 - 1000);
  });
  it('bad inputs are KestrelErrors, never crashes', async () => {
    expect(await code(runCmd(claims, {}))).toBe('E_OPTIONS');
    expect(await code(runCmd(claims, { fpr: '2' }))).toBe('E_OPTIONS');
    expect(await code(runCmd(claims, { fpr: 'abc' }))).toBe('E_OPTIONS');
    expect(await code(runCmd(claims, { fp: '1.5', negatives: '4' }))).toBe('E_OPTIONS');
    expect(await code(runCmd(claims, { fp: '1' }))).toBe('E_OPTIONS');
    expect(await code(runCmd(claims, { fp: '5', negatives: '4' }))).toBe('E_DATA_FORMAT');
    expect(await code(runCmd(claims, { bench: join(dir, 'missing.json') }))).toBe('E_IO');
    expect(await code(runCmd(claims, { bench: file('bad.json', '{not json') }))).toBe('E_DATA_FORMAT');
    expect(await code(runCmd(claims, { bench: file('nofp.json', '{"negatives": 10}') }))).toBe('E_DATA_FORMAT');
    expect(await code(runCmd(claims, { bench: file('noneg.json', '{"fp": 1}') }))).toBe('E_DATA_FORMAT');
    expect(await code(runCmd(claims, { bench: file('zero.json', '{"fp": 0, "negatives": 0}') }))).toBe('E_DATA_FORMAT');
  });
});

describe('kestrel eval captions', () => {
  const fx = JSON.parse(readFileSync(fileURLToPath(new URL('../../../../test/fixtures/captions/caption_cases.json', import.meta.url)), 'utf8')) as {
    cases: { image_ids: number[]; gts_raw: Record<string, string[]>; res_raw: Record<string, string[]>; expected: Record<string, unknown> & { per_image: Record<string, Record<string, number>> } }[];
  };
  const c = fx.cases[1]!;
  const gt = file('gt.json', JSON.stringify({
    images: c.image_ids.map((id) => ({ id })),
    annotations: c.image_ids.flatMap((id) => c.gts_raw[String(id)]!.map((caption) => ({ image_id: id, caption }))),
  }));
  const res = file('res.json', JSON.stringify(c.image_ids.map((id) => ({ image_id: id, caption: c.res_raw[String(id)]![0] }))));

  it('--json prints the six metrics and per_image', async () => {
    const r = JSON.parse((await runCmd(captions, { gt, results: res })).out) as Record<string, number> & { per_image: Record<string, Record<string, number>> };
    for (const m of ['Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'ROUGE_L', 'CIDEr']) {
      expect(Math.abs(r[m]! - (c.expected[m] as number))).toBeLessThanOrEqual(1e-9);
      for (const id of c.image_ids) expect(Math.abs(r.per_image[String(id)]![m]! - c.expected.per_image[String(id)]![m]!)).toBeLessThanOrEqual(1e-9);
    }
  });
  it('prints a table without --json', async () => {
    const { out } = await runCmd(captions, { gt, results: res }, false);
    expect(out).toMatch(/CIDEr\s+1\.3576/);
    expect(out).toMatch(/METEOR\s+not provided/);
  });
  it('bad inputs → E_COCO_FORMAT / E_IO / E_OPTIONS', async () => {
    expect(await code(runCmd(captions, { gt }))).toBe('E_OPTIONS');
    expect(await code(runCmd(captions, { gt: join(dir, 'nope.json'), results: res }))).toBe('E_IO');
    expect(await code(runCmd(captions, { gt: file('g1.json', '[oops'), results: res }))).toBe('E_COCO_FORMAT');
    expect(await code(runCmd(captions, { gt, results: file('r1.json', '{"image_id": 1}') }))).toBe('E_COCO_FORMAT');
    expect(await code(runCmd(captions, { gt, results: file('r2.json', '[{"image_id": 424242, "caption": "x"}]') }))).toBe('E_COCO_FORMAT');
    expect(await code(runCmd(captions, { gt, results: file('r3.json', `[{"image_id": ${c.image_ids[0]}, "caption": null}]`) }))).toBe('E_COCO_FORMAT');
    expect(await code(runCmd(captions, { gt: file('g2.json', '{"images": [{"id": 1}], "annotations": [{"image_id": 1}]}'), results: res }))).toBe('E_COCO_FORMAT');
  });
});
