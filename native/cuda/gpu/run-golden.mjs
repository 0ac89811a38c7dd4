#!/usr/bin/env node
// The golden LM and VLM cases on device 'cuda' in plain Node (no vitest), from the compiled dist/ JS. It is the
// same check as native/lib/cuda-golden.test.ts (the case helpers are those of test/vlm/golden.ts), for a machine
// with node but no dev dependencies (the GPU machine, see native/cuda/gpu/README.md):
//   LM  A/B/C x case_short, case_long: logits max|Δ| vs logits.f64 < 1e-4, 16 greedy ids equal decode_token_ids
//   VLM A/B/C x case_img0, case_img1, case_multi: image embeds < 1e-4, logits vs logits.f64 < 1e-3, 8 greedy ids
// One PASS/FAIL line per case with the errors and times; a JSON summary in $OUT/golden.json when OUT is set.
// Exit status 1 when any case fails (an exception, e.g. a load error, fails the model's cases and goes on).
//   node native/cuda/gpu/run-golden.mjs [--device cuda|cpu] [--only lm|vlm] [--models A,B,C]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readAllSafetensors } from '@kestrel/core';
import { MoeLanguageModel } from '@kestrel/moe';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LM = join(ROOT, 'test/fixtures/lm');
const VLM = join(ROOT, 'test/fixtures/vlm');

let args;
try {
  args = parseArgs({ options: { device: { type: 'string', default: 'cuda' }, only: { type: 'string', default: 'all' }, models: { type: 'string', default: 'A,B,C' } } }).values;
} catch (e) {
  args = { error: e.message };
}
const { device, only } = args;
const models = (args.models ?? '').split(',').filter(Boolean);
if (args.error || !['cuda', 'cpu'].includes(device) || !['all', 'lm', 'vlm'].includes(only)) {
  console.error(`${args.error ? `${args.error}\n` : ''}usage: run-golden.mjs [--device cuda|cpu] [--only lm|vlm] [--models A,B,C]`);
  process.exit(2);
}

/** max |a - b|; NaN counts as Infinity (as test/vlm/golden.ts maxAbsDiff). */
function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
const sameIds = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const fmt = (x) => (Number.isFinite(x) ? x.toExponential(2) : String(x));

const results = [];
function report(r) {
  results.push(r);
  const errs = Object.entries(r.err ?? {}).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
  const ids = r.ids ? `, ids ${r.ids.match}/${r.ids.want}` : '';
  const times = Object.entries(r.ms ?? {}).map(([k, v]) => `${k} ${v.toFixed(0)}ms`).join(' ');
  console.log(`${r.pass ? 'PASS' : 'FAIL'} ${r.name}${errs ? `: ${errs}` : ''}${ids}${times ? ` (${times})` : ''}${r.error ? ` ERROR ${r.error}` : ''}`);
}
const idsMatch = (got, want) => ({ match: got.filter((v, i) => v === want[i]).length, want: want.length, equal: sameIds(got, want), got });
const errMsg = (e) => `${e?.code ? `${e.code}: ` : ''}${e?.message ?? e}`.split('\n')[0];

async function lmCases(m) {
  const cases = ['case_short', 'case_long'];
  let model;
  const t0 = process.hrtime.bigint();
  try {
    model = await MoeLanguageModel.load(join(LM, m), { device });
  } catch (e) {
    for (const c of cases) report({ name: `LM ${m}/${c}`, pass: false, error: `load: ${errMsg(e)}` });
    return;
  }
  const loadMs = ms(t0);
  try {
    for (const c of cases) {
      const r = { name: `LM ${m}/${c}`, pass: false, err: {}, ms: {} };
      try {
        const t = await readAllSafetensors(join(LM, m, `${c}.safetensors`));
        const json = JSON.parse(readFileSync(join(LM, m, `${c}.json`), 'utf8'));
        let t1 = process.hrtime.bigint();
        const out = model.forward({ inputIds: json.input_ids });
        r.ms.forward = ms(t1);
        r.err.logits = maxAbsDiff(out.logits.data, t.get('logits.f64').data);
        t1 = process.hrtime.bigint();
        const res = await model.generate({ inputIds: json.input_ids }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
        r.ms.generate16 = ms(t1);
        r.ids = idsMatch(res.tokenIds, json.decode_token_ids);
        r.promptTokens = json.input_ids.length;
        r.pass = r.err.logits < 1e-4 && r.ids.equal;
      } catch (e) {
        r.error = errMsg(e);
      }
      if (c === cases[0]) r.ms.load = loadMs;
      report(r);
    }
  } finally {
    model.dispose();
  }
}

async function vlmCases(m) {
  const cases = ['case_img0', 'case_img1', 'case_multi'];
  // the VLM module alone, not @kestrel/pipelines' index (that one pulls onnxruntime and tfjs)
  const { VisionLanguageModel } = await import(new URL('packages/pipelines/dist/vlm/vision-language-model.js', `file://${ROOT}`).href);
  const dir = join(VLM, m);
  let vlm;
  const t0 = process.hrtime.bigint();
  try {
    vlm = await VisionLanguageModel.load(dir, { device });
  } catch (e) {
    for (const c of cases) report({ name: `VLM ${m}/${c}`, pass: false, error: `load: ${errMsg(e)}` });
    return;
  }
  const loadMs = ms(t0);
  try {
    for (const c of cases) {
      const r = { name: `VLM ${m}/${c}`, pass: false, err: {}, ms: {} };
      try {
        const info = JSON.parse(await readFile(join(dir, `${c}.json`), 'utf8'));
        const t = await readAllSafetensors(join(dir, `${c}.safetensors`));
        const get = (name) => {
          const x = t.get(name);
          if (!x) throw new Error(`golden tensor ${name} missing in ${m}/${c}`);
          return x;
        };
        const input = { inputIds: info.input_ids, images: info.image_files.map((f) => join(dir, f)) };
        let t1 = process.hrtime.bigint();
        const prep = await vlm.prepareInputs(input);
        r.ms.prepare = ms(t1);
        r.err.imageEmbeds = maxAbsDiff(prep.imageEmbeds.data, get('image_embeds').data);
        const again = { ...input, preprocessed: prep.preprocessed };
        t1 = process.hrtime.bigint();
        const { logits } = await vlm.forward(again);
        r.ms.forward = ms(t1);
        r.err.logits = maxAbsDiff(logits.data, get('logits.f64').data);
        t1 = process.hrtime.bigint();
        const { tokenIds } = await vlm.generate(again, { maxNewTokens: 8, temperature: 0, stopOnEos: false });
        r.ms.generate8 = ms(t1);
        r.ids = idsMatch(tokenIds, info.decode_token_ids);
        r.promptTokens = info.input_ids.length;
        r.pass = r.err.imageEmbeds < 1e-4 && r.err.logits < 1e-3 && r.ids.equal;
      } catch (e) {
        r.error = errMsg(e);
      }
      if (c === cases[0]) r.ms.load = loadMs;
      report(r);
    }
  } finally {
    vlm.dispose();
  }
}

const tAll = process.hrtime.bigint();
console.log(`golden cases on device '${device}' (node ${process.version})`);
if (only !== 'vlm') for (const m of models) await lmCases(m);
if (only !== 'lm') for (const m of models) await vlmCases(m);
const failed = results.filter((r) => !r.pass).length;
const totalMs = ms(tAll);
console.log(`golden: ${results.length - failed}/${results.length} cases pass on device '${device}' in ${(totalMs / 1000).toFixed(1)}s`);
if (process.env.OUT) {
  mkdirSync(process.env.OUT, { recursive: true });
  const summary = { device, node: process.version, pass: failed === 0, passed: results.length - failed, total: results.length, totalMs, cases: results };
  writeFileSync(join(process.env.OUT, 'golden.json'), `${JSON.stringify(summary, (k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1)}\n`);
}
process.exit(failed === 0 && results.length > 0 ? 0 : 1);
