/**
 * Exactness against the PyTorch reference goldens (test/fixtures/lm, copied from the DeepSeek-VL2 tiny
 * golden set): logits vs the float64 run, hidden states, router top-k, 16 greedy tokens with the KV
 * cache, batch, and the sampling filter. Runs on every backend that loads here.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { readAllSafetensors, type Tensor } from '@kestrel/core';
import { availableBackends } from '@kestrel/native';
import { MoeLanguageModel, samplingProbs } from './index.js';

const FIX = fileURLToPath(new URL('../../../test/fixtures/lm/', import.meta.url));
const MODELS = ['A', 'B', 'C'] as const;
const CASES = ['case_short', 'case_long', 'case_batch_0', 'case_batch_1'] as const;
const backends = (await availableBackends()).map((k) => k.name);
// The portable kernels accumulate in float64, so they must sit far inside the README's suggested
// acceptance (1e-4); other backends are held to that acceptance.
const tol = (backend: string): number => (backend === 'portable' ? 1e-5 : 1e-4);

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

interface Golden { t: Map<string, Tensor>; json: { input_ids: number[]; decode_token_ids: number[]; moe_layers: number[] } }
const goldens = new Map<string, Golden>();
async function golden(model: string, c: string): Promise<Golden> {
  const key = `${model}/${c}`;
  if (!goldens.has(key)) {
    goldens.set(key, {
      t: await readAllSafetensors(`${FIX}${model}/${c}.safetensors`),
      json: JSON.parse(readFileSync(`${FIX}${model}/${c}.json`, 'utf8')) as Golden['json'],
    });
  }
  return goldens.get(key)!;
}

describe.each(backends.map((b) => [b]))('golden LM cases on %s kernels', (backendName) => {
  const backend = backendName === 'portable' ? 'portable' : 'native';
  for (const m of MODELS) {
    describe(`model ${m}`, () => {
      let model: MoeLanguageModel;
      beforeAll(async () => { model = await MoeLanguageModel.load(`${FIX}${m}`, { backend }); });

      for (const c of CASES) {
        it(`${c}: logits, hidden states, router`, async () => {
          const g = await golden(m, c);
          const out = model.forward({ inputIds: g.json.input_ids }, { outputHiddenStates: true, outputRouter: true });
          const T = g.json.input_ids.length;
          expect(out.logits.shape).toEqual([T, model.config.vocab]);
          expect(maxAbs(out.logits.data, g.t.get('logits.f64')!.data as Float64Array)).toBeLessThan(tol(backendName));
          expect(maxAbs(out.hiddenStates!.data, g.t.get('lm_hidden_states')!.data as Float32Array)).toBeLessThan(10 * tol(backendName));
          expect(out.router!.map((r) => r.layer)).toEqual(g.json.moe_layers);
          for (const r of out.router!) {
            const idx = g.t.get(`router.layer${r.layer}.topk_idx`)!.data as Int32Array;
            const w = g.t.get(`router.layer${r.layer}.topk_weight`)!.data as Float32Array;
            const sc = g.t.get(`router.layer${r.layer}.scores`)!.data as Float32Array;
            expect(maxAbs(r.scores, sc)).toBeLessThan(1e-5);
            for (let t = 0; t < T; t++) {
              const pairs = (ii: Int32Array, ww: Float32Array): Array<[number, number]> =>
                Array.from({ length: r.topK }, (_, j) => [ii[t * r.topK + j]!, ww[t * r.topK + j]!] as [number, number]).sort((a, b) => a[0] - b[0]);
              const mine = pairs(r.topkIdx, r.topkWeight);
              const ref = pairs(idx, w);
              expect(mine.map((p) => p[0])).toEqual(ref.map((p) => p[0]));
              for (let j = 0; j < r.topK; j++) expect(Math.abs(mine[j]![1] - ref[j]![1])).toBeLessThan(1e-5);
            }
          }
        });

        it(`${c}: 16 greedy tokens with the KV cache`, async () => {
          const g = await golden(m, c);
          const res = await model.generate({ inputIds: g.json.input_ids }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
          expect(res.tokenIds).toEqual(g.json.decode_token_ids);
          expect(res.finishReason).toBe('length');
          // the step logits themselves, decoded one token at a time through the cache
          const ref = g.t.get('decode_step_logits.f64')!.data as Float64Array;
          const V = model.config.vocab;
          const cache = model.createCache();
          let logits = model.forward({ inputIds: g.json.input_ids, cache }, { lastOnly: true }).logits.data;
          for (let s = 0; s < 16; s++) {
            expect(maxAbs(logits, ref.subarray(s * V, (s + 1) * V))).toBeLessThan(tol(backendName));
            logits = model.forward({ inputIds: [g.json.decode_token_ids[s]!], cache }, { lastOnly: true }).logits.data;
          }
          expect(cache.length).toBe(g.json.input_ids.length + 16);
        });
      }

      it('batch: both sequences in one pass give each sequence its own results', async () => {
        const g0 = await golden(m, 'case_batch_0');
        const g1 = await golden(m, 'case_batch_1');
        const [o0, o1] = model.forwardBatch([{ inputIds: g0.json.input_ids }, { inputIds: g1.json.input_ids }]);
        expect(maxAbs(o0!.logits.data, g0.t.get('logits.f64')!.data as Float64Array)).toBeLessThan(tol(backendName));
        expect(maxAbs(o1!.logits.data, g1.t.get('logits.f64')!.data as Float64Array)).toBeLessThan(tol(backendName));
        const res = await model.generateBatch([{ inputIds: g0.json.input_ids }, { inputIds: g1.json.input_ids }], { maxNewTokens: 16, stopOnEos: false });
        expect(res.map((r) => r.tokenIds)).toEqual([g0.json.decode_token_ids, g1.json.decode_token_ids]);
      });

      it('case_sample: temperature + top-p filter (keep mask and probabilities)', async () => {
        const g = await golden(m, 'case_sample');
        const keep = g.t.get('sample_step0_keep_mask')!.data as Int32Array;
        const probs = g.t.get('sample_step0_probs')!.data as Float64Array;
        const p = { temperature: 0.8, topP: 0.9, topK: 0 };
        const fromStored = samplingProbs(g.t.get('sample_step0_logits')!.data as Float32Array, p);
        expect(Array.from(fromStored, (v) => (v > 0 ? 1 : 0))).toEqual(Array.from(keep));
        expect(maxAbs(fromStored, probs)).toBeLessThan(1e-12);
        const own = model.forward({ inputIds: g.json.input_ids }, { lastOnly: true }).logits.data;
        const fromOwn = samplingProbs(own, p);
        expect(Array.from(fromOwn, (v) => (v > 0 ? 1 : 0))).toEqual(Array.from(keep));
        expect(maxAbs(fromOwn, probs)).toBeLessThan(1e-5);
      });

      if (m !== 'A') {
        it('MLA absorbed and naive forms both match the reference', async () => {
          const g = await golden(m, 'case_long');
          for (const mlaMode of ['absorbed', 'naive'] as const) {
            const mm = await MoeLanguageModel.load(`${FIX}${m}`, { backend, mlaMode });
            const out = mm.forward({ inputIds: g.json.input_ids });
            expect(maxAbs(out.logits.data, g.t.get('logits.f64')!.data as Float64Array)).toBeLessThan(tol(backendName));
            const res = await mm.generate({ inputIds: g.json.input_ids }, { maxNewTokens: 16, stopOnEos: false });
            expect(res.tokenIds).toEqual(g.json.decode_token_ids);
            mm.dispose();
          }
        });
      }
    });
  }
});
