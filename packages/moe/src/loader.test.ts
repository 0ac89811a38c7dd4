/** Checkpoint loading: config validation, formats (sharded, BF16, F16, q8), prefixes, tied embeddings, dtypes. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm, mkdir, readFile, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, readAllSafetensors, writeSafetensors, f32ToBf16, f32ToF16, f16ToF32, isKestrelError } from '@kestrel/core';
import { MoeLanguageModel, quantizeCheckpoint, parseModelConfig } from './index.js';

const FIX = fileURLToPath(new URL('../../../test/fixtures/lm/', import.meta.url));
const IDS = [0, 17, 230, 45, 9, 12, 101, 77, 150, 33, 5, 64, 88, 200];
let work: string;
beforeAll(async () => { work = await mkdtemp(join(tmpdir(), 'kestrel-moe-')); });
afterAll(async () => { await rm(work, { recursive: true, force: true }); });

async function config(m: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(`${FIX}${m}/config.json`, 'utf8')) as Record<string, unknown>;
}
async function makeDir(name: string, cfg: Record<string, unknown>, tensors: Map<string, Tensor>): Promise<string> {
  const d = join(work, name);
  await mkdir(d, { recursive: true });
  await writeFile(join(d, 'config.json'), JSON.stringify(cfg));
  await writeSafetensors(join(d, 'model.safetensors'), tensors);
  return d;
}
async function logits(dir: string, opts: Parameters<typeof MoeLanguageModel.load>[1] = {}): Promise<Float32Array> {
  const m = await MoeLanguageModel.load(dir, { backend: 'portable', ...opts });
  const out = m.forward({ inputIds: IDS }).logits.data;
  m.dispose();
  return out;
}
async function expectCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(isKestrelError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
  if (re) expect((e as Error).message).toMatch(re);
}
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('config validation', () => {
  it('accepts the three golden configs and derives the layer plan', async () => {
    expect(parseModelConfig(await config('A')).isMoeLayer).toEqual([false, true, true]);
    expect(parseModelConfig(await config('C')).isMoeLayer).toEqual([true, false, true, false]);
  });
  it('accepts rope_type as an alias of rope_scaling.type', async () => {
    const b = await config('B');
    const rs = b.rope_scaling as Record<string, unknown>;
    const { type: _t, ...rest } = rs;
    expect(parseModelConfig({ ...b, rope_scaling: { ...rest, rope_type: 'yarn' } }).raw.rope_scaling).toEqual(parseModelConfig(b).raw.rope_scaling);
    expect(parseModelConfig({ ...b, rope_scaling: { ...rs, rope_type: 'yarn' } }).raw.rope_scaling?.type).toBe('yarn');
  });
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['rope_type disagreeing with type', { rope_scaling: { type: 'linear', rope_type: 'yarn', factor: 2 } }, /rope_scaling/],
    ['unknown topk_method', { topk_method: 'bogus' }, /topk_method/],
    ['unknown scoring_func', { scoring_func: 'relu' }, /scoring_func/],
    ['hidden_act', { hidden_act: 'gelu' }, /hidden_act/],
    ['dynamic rope scaling', { rope_scaling: { type: 'dynamic', factor: 2 } }, /rope_scaling/],
    ['unknown yarn key', { rope_scaling: { type: 'yarn', factor: 2, extra: 1 } }, /rope_scaling/],
    ['yarn on the MHA path', { rope_scaling: { type: 'yarn', factor: 2 } }, /use_mla=false/],
    ['experts not divisible into groups', { topk_method: 'group_limited_greedy', n_group: 3, topk_group: 1 }, /n_group/],
    ['top-k > experts', { num_experts_per_tok: 9 }, /num_experts_per_tok/],
    ['wrong architecture', { architectures: ['LlamaForCausalLM'] }, /architectures/],
    ['heads do not divide hidden', { num_attention_heads: 5 }, /num_attention_heads/],
  ];
  for (const [what, patch, re] of bad) {
    it(`rejects ${what} with E_CHECKPOINT_FORMAT`, async () => {
      const cfg = { ...(await config('A')), ...patch };
      let err: unknown = null;
      try { parseModelConfig(cfg); } catch (e) { err = e; }
      expect(isKestrelError(err, 'E_CHECKPOINT_FORMAT'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(re);
    });
  }

  it('rejects weights that disagree with config.json', async () => {
    const t = await readAllSafetensors(`${FIX}A/model.safetensors`);
    const d = await makeDir('fewer-layers', { ...(await config('A')), num_hidden_layers: 2 }, t);
    await expectCode(MoeLanguageModel.load(d, { backend: 'portable' }), 'E_CHECKPOINT_FORMAT', /not used/);
    const d2 = await makeDir('more-layers', { ...(await config('A')), num_hidden_layers: 4 }, t);
    await expectCode(MoeLanguageModel.load(d2, { backend: 'portable' }), 'E_CHECKPOINT_FORMAT', /model\.layers\.3\..*missing/);
    const d3 = await makeDir('wrong-inter', { ...(await config('A')), intermediate_size: 100 }, t);
    await expectCode(MoeLanguageModel.load(d3, { backend: 'portable' }), 'E_CHECKPOINT_FORMAT', /shape/);
  });

  it('reports one progress event per layer', async () => {
    const seen: number[] = [];
    const m = await MoeLanguageModel.load(`${FIX}C`, { backend: 'portable', onProgress: (e) => seen.push(e.done) });
    expect(seen).toEqual([1, 2, 3, 4]);
    m.dispose();
  });

  it('option errors: cuda, bad dtype, missing directory, bad token ids', async () => {
    await expectCode(MoeLanguageModel.load(`${FIX}A`, { device: 'cuda' }), 'E_BACKEND_UNAVAILABLE');
    await expectCode(MoeLanguageModel.load(`${FIX}A`, { dtype: 'fp4' as 'f32' }), 'E_OPTIONS');
    await expectCode(MoeLanguageModel.load(join(work, 'nope')), 'E_MODEL_NOT_FOUND');
    const m = await MoeLanguageModel.load(`${FIX}A`, { backend: 'portable' });
    expect(() => m.forward({ inputIds: [0, 300] })).toThrow(/outside/);
    expect(() => m.forward({ inputIds: [] })).toThrow(/at least one token/);
    m.dispose();
    expect(() => m.forward({ inputIds: [0] })).toThrow(/disposed/);
  });
});

describe('checkpoint formats', () => {
  it('sharded safetensors (index.json) load identically', async () => {
    const t = await readAllSafetensors(`${FIX}B/model.safetensors`);
    const d = join(work, 'sharded');
    await mkdir(d, { recursive: true });
    const names = [...t.keys()];
    const half = Math.floor(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < 2; i++) {
      const f = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(join(d, f), new Map(shards[i]!.map((n) => [n, t.get(n)!])));
      for (const n of shards[i]!) weightMap[n] = f;
    }
    await writeFile(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await copyFile(`${FIX}B/config.json`, join(d, 'config.json'));
    expect(maxAbs(await logits(d), await logits(`${FIX}B`))).toBe(0);
  });

  it('BF16 matrices load as the same values as dtype bf16 of the F32 checkpoint', async () => {
    const t = await readAllSafetensors(`${FIX}C/model.safetensors`);
    const bf = new Map<string, Tensor>();
    for (const [n, v] of t) {
      // the router stays f32 in every dtype, so keep it f32 here too
      bf.set(n, v.shape.length === 2 && !n.endsWith('mlp.gate.weight') ? new Tensor('bf16', v.shape, f32ToBf16(v.data as Float32Array)) : v);
    }
    const d = await makeDir('bf16', await config('C'), bf);
    const a = await logits(d);
    expect(maxAbs(a, await logits(`${FIX}C`, { dtype: 'bf16' }))).toBe(0);
  });

  it('F16 tensors decode exactly', async () => {
    const t = await readAllSafetensors(`${FIX}A/model.safetensors`);
    const h = new Map<string, Tensor>();
    const f = new Map<string, Tensor>();
    for (const [n, v] of t) {
      const bits = f32ToF16(v.data as Float32Array);
      h.set(n, new Tensor('f16', v.shape, bits));
      f.set(n, new Tensor('f32', v.shape, f16ToF32(bits)));
    }
    const d1 = await makeDir('f16', await config('A'), h);
    const d2 = await makeDir('f16-as-f32', await config('A'), f);
    expect(maxAbs(await logits(d1), await logits(d2))).toBe(0);
  });

  it('DeepSeek-VL2 layout: language.-prefixed weights with a config object, and inputsEmbeds', async () => {
    const t = await readAllSafetensors(`${FIX}B/model.safetensors`);
    const pre = new Map<string, Tensor>([['vision.some.weight', Tensor.f32([2], [1, 2])]]);
    for (const [n, v] of t) pre.set(`language.${n}`, v);
    const d = await makeDir('vl2', { model_type: 'deepseek_vl_v2' }, pre);
    const cfg = await config('B');
    const m = await MoeLanguageModel.load(d, { backend: 'portable', config: cfg });
    const ref = await logits(`${FIX}B`);
    expect(maxAbs(m.forward({ inputIds: IDS }).logits.data, ref)).toBe(0);
    expect(maxAbs(m.forward({ inputsEmbeds: m.embed(IDS) }).logits.data, ref)).toBe(0);
    await expectCode(MoeLanguageModel.load(d, { backend: 'portable' }), 'E_CHECKPOINT_FORMAT');
  });

  it('tied embeddings use embed_tokens as lm_head', async () => {
    const t = await readAllSafetensors(`${FIX}A/model.safetensors`);
    const untied = new Map(t);
    untied.set('lm_head.weight', t.get('model.embed_tokens.weight')!);
    const tied = new Map(t);
    tied.delete('lm_head.weight');
    const d1 = await makeDir('tied', { ...(await config('A')), tie_word_embeddings: true }, tied);
    const d2 = await makeDir('untied-copy', await config('A'), untied);
    expect(maxAbs(await logits(d1), await logits(d2))).toBe(0);
    const d3 = await makeDir('tied-but-head', { ...(await config('A')), tie_word_embeddings: true }, t);
    await expectCode(MoeLanguageModel.load(d3, { backend: 'portable' }), 'E_CHECKPOINT_FORMAT', /tie_word_embeddings/);
  });
});

describe('int8', () => {
  for (const m of ['A', 'B', 'C']) {
    it(`model ${m}: kestrel quantize output loads exactly like quantize-on-load, and stays close to f32`, async () => {
      const out = join(work, `q8-${m}`);
      const rep = await quantizeCheckpoint(`${FIX}${m}`, out);
      expect(rep.quantized).toBeGreaterThan(0);
      expect(rep.outputBytes).toBeLessThan(rep.inputBytes * 0.4);
      const st = await readAllSafetensors(join(out, 'model.safetensors'));
      expect(st.get('lm_head.weight')!.dtype).toBe('i8');
      expect(st.get('model.norm.weight')!.dtype).toBe('f32');
      const q = await logits(out, { dtype: 'int8' });
      expect(maxAbs(q, await logits(`${FIX}${m}`, { dtype: 'int8' }))).toBe(0);
      // quality vs f32 on these random-weight models: error well below the logit scale, top-1 mostly kept
      const f = await logits(`${FIX}${m}`);
      const V = 300;
      let agree = 0, maxRef = 0;
      for (let r = 0; r < IDS.length; r++) {
        let a = 0, b = 0;
        for (let v = 1; v < V; v++) {
          if (q[r * V + v]! > q[r * V + a]!) a = v;
          if (f[r * V + v]! > f[r * V + b]!) b = v;
        }
        if (a === b) agree++;
      }
      for (const v of f) maxRef = Math.max(maxRef, Math.abs(v));
      const err = maxAbs(q, f);
      console.log(`int8 model ${m}: max |logit err| ${err.toExponential(2)} (max |logit| ${maxRef.toFixed(2)}), top-1 agreement ${agree}/${IDS.length}`);
      expect(err).toBeLessThan(0.05 * maxRef);
      expect(agree / IDS.length).toBeGreaterThanOrEqual(0.85);
      // an existing non-empty output directory is refused
      await expectCode(quantizeCheckpoint(`${FIX}${m}`, out), 'E_OPTIONS', /already exists/);
    });
  }
});
