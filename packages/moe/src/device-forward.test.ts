/**
 * The device-resident forward pass (device-forward.ts) on the CPU stand-in of the CUDA library: the real
 * shim, device buffers, KV cache on the "device", router and expert tiles built by the library. Checks the
 * golden LM cases (logits vs float64, 16 greedy ids), agreement with the host path, and the KV cache moving
 * between host and device paths. The CUDA kernels themselves are checked on a GPU (check-on-gpu.sh).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { readAllSafetensors } from '@kestrel/core';
import type { CudaKernels } from '../../../native/lib/cuda.js';
import { cudaStandInKernels, standInUnavailable } from '../../../native/lib/cuda-standin.js';
import { MoeLanguageModel, type LoadOptions } from './index.js';

const FIX = fileURLToPath(new URL('../../../test/fixtures/lm/', import.meta.url));

/** A golden LM case: its prompt, its 16 greedy ids, and the float64 reference logits. */
async function lmCase(m: string, c: string): Promise<{ ids: number[]; decode: number[]; logits: Float64Array }> {
  const json = JSON.parse(readFileSync(`${FIX}${m}/${c}.json`, 'utf8')) as { input_ids: number[]; decode_token_ids: number[] };
  const t = await readAllSafetensors(`${FIX}${m}/${c}.safetensors`);
  return { ids: json.input_ids, decode: json.decode_token_ids, logits: t.get('logits.f64')!.data as Float64Array };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.skipIf(standInUnavailable !== '')(`device-resident forward on the CUDA stand-in${standInUnavailable ? ` (skipped: ${standInUnavailable})` : ''}`, () => {
  let standIn: ReturnType<typeof cudaStandInKernels>;
  let k: CudaKernels;
  beforeAll(() => { standIn = cudaStandInKernels(); k = standIn.kernels; }, 120_000);
  afterAll(() => standIn?.cleanup());
  /** Load an LM fixture on the stand-in kernels, run `f`, always dispose. */
  const withModel = async (m: string, f: (model: MoeLanguageModel) => Promise<void> | void, opts: Omit<LoadOptions, 'kernels'> = {}): Promise<void> => {
    const model = await MoeLanguageModel.load(`${FIX}${m}`, { kernels: k, ...opts });
    try { await f(model); } finally { model.dispose(); }
  };

  for (const m of ['A', 'B', 'C']) {
    it(`LM ${m}: golden logits and 16 greedy ids through device buffers`, async () => {
      await withModel(m, async (model) => {
        for (const c of ['case_short', 'case_long']) {
          const g = await lmCase(m, c);
          const out = model.forward({ inputIds: g.ids });
          expect(maxAbs(out.logits.data, g.logits), `${m}/${c}`).toBeLessThan(1e-4);
          // the host path (router outputs force it) agrees with the device path
          const host = model.forward({ inputIds: g.ids }, { outputRouter: true });
          expect(maxAbs(out.logits.data, host.logits.data)).toBeLessThan(1e-4);
          const res = await model.generate({ inputIds: g.ids }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
          expect(res.tokenIds, `${m}/${c} greedy ids`).toEqual(g.decode);
        }
      });
    }, 120_000);
  }

  it('single-token steps replay a captured graph: same tokens and logits as op-by-op steps, across cache growth', async () => {
    await withModel('B', async (model) => {
      const g = await lmCase('B', 'case_long');
      // 16 greedy steps from a prompt near the 64-row initial capacity: the cache grows and the graph is re-captured
      const prompt = g.ids.slice(0, 60);
      model.cudaGraphs = false;
      const eager = await model.generate({ inputIds: prompt }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
      expect(model.deviceStats!.graphReplays).toBe(0);
      model.cudaGraphs = true;
      const graphed = await model.generate({ inputIds: prompt }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
      expect(graphed.tokenIds).toEqual(eager.tokenIds);
      const st = model.deviceStats!;
      expect(st.graphCaptures).toBeGreaterThanOrEqual(2); // once at first, again after the cache grew past 64 rows
      expect(st.graphReplays).toBeGreaterThanOrEqual(10);
      // the same through forward (logits returned): the replayed steps give the eager logits
      const c1 = model.createCache(), c2 = model.createCache();
      model.forward({ inputIds: prompt, cache: c1 });
      model.forward({ inputIds: prompt, cache: c2 });
      for (const t of eager.tokenIds.slice(0, 6)) {
        model.cudaGraphs = false;
        const a = model.forward({ inputIds: [t], cache: c1 }, { lastOnly: true }).logits.data;
        model.cudaGraphs = true;
        const b = model.forward({ inputIds: [t], cache: c2 }, { lastOnly: true }).logits.data;
        expect(maxAbs(a, b)).toBe(0);
      }
    });
  }, 120_000);

  it("expertsOn 'cpu' and cpuExpertLayers: routed experts in host memory, the golden cases unchanged", async () => {
    for (const [m, opts] of [['A', { expertsOn: 'cpu' }], ['C', { cpuExpertLayers: 1 }]] as const) {
      await withModel(m, async (model) => {
        const p = model.expertPlacement!;
        const moeLayers = model.config.isMoeLayer.filter(Boolean).length;
        expect(p.expertLayersOnCpu).toBe('expertsOn' in opts ? moeLayers : 1);
        expect(p.experts.filter((e) => e === 'cpu').length).toBe(p.expertLayersOnCpu);
        const g = await lmCase(m, 'case_long');
        expect(maxAbs(model.forward({ inputIds: g.ids }).logits.data, g.logits)).toBeLessThan(1e-4);
        const res = await model.generate({ inputIds: g.ids }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
        expect(res.tokenIds).toEqual(g.decode);
        // activations cross the bus in the middle of a step, so nothing is captured as a graph
        expect(model.deviceStats!.graphReplays).toBe(0);
      }, opts);
    }
    await expect(MoeLanguageModel.load(`${FIX}A`, { expertsOn: 'cpu' })).rejects.toMatchObject({ code: 'E_OPTIONS' });
  }, 120_000);

  it('a batch of sequences (each with its own GPU cache and graph) gives what each gives alone', async () => {
    await withModel('C', async (model) => {
      const prompts = [[5, 9, 2, 44, 17], [3, 3, 8], [120, 7, 7, 7, 1, 60, 2]];
      const alone = [];
      for (const p of prompts) alone.push((await model.generate({ inputIds: p }, { maxNewTokens: 10, temperature: 0, stopOnEos: false })).tokenIds);
      const together = await model.generateBatch(prompts.map((p) => ({ inputIds: p })), { maxNewTokens: 10, temperature: 0, stopOnEos: false });
      expect(together.map((r) => r.tokenIds)).toEqual(alone);
      expect(model.deviceStats!.graphReplays).toBeGreaterThan(0);
      // forwardBatch: per-sequence logits equal separate forwards
      const sep = prompts.map((p) => model.forward({ inputIds: p }).logits.data);
      const bat = model.forwardBatch(prompts.map((p) => ({ inputIds: p })));
      bat.forEach((o, i) => expect(maxAbs(o.logits.data, sep[i]!)).toBe(0));
    });
  }, 120_000);

  it('fused ops (residual adds in the products, 2-launch MLPs) give the golden logits and ids, with and without graphs', async () => {
    for (const m of ['A', 'B', 'C']) {
      await withModel(m, async (model) => {
        model.cudaFusedOps = true;
        const g = await lmCase(m, 'case_short');
        // case_short fits in 16 rows, so the prefill takes the fused path too
        expect(g.ids.length).toBeLessThanOrEqual(16);
        expect(maxAbs(model.forward({ inputIds: g.ids }).logits.data, g.logits), m).toBeLessThan(1e-4);
        for (const graphs of [false, true]) {
          model.cudaGraphs = graphs;
          const res = await model.generate({ inputIds: g.ids }, { maxNewTokens: 16, temperature: 0, stopOnEos: false });
          expect(res.tokenIds, `${m} graphs=${graphs}`).toEqual(g.decode);
        }
      });
    }
  }, 120_000);

  it('a cache continued by another model never replays the first model\'s graph', async () => {
    const prompt = [5, 9, 2, 44, 17, 3];
    const a = await MoeLanguageModel.load(`${FIX}C`, { kernels: k });
    const cache = a.createCache();
    let id = a.greedyTokens([{ inputIds: prompt, cache }])![0]!;
    const ids = [id];
    for (let i = 0; i < 5; i++) ids.push(id = a.greedyTokens([{ inputIds: [id], cache }])![0]!);
    expect(a.deviceStats!.graphReplays).toBeGreaterThan(0);
    a.dispose(); // frees the weights and scratch the graph on this cache points at
    const b = await MoeLanguageModel.load(`${FIX}C`, { kernels: k });
    try {
      for (let i = 0; i < 5; i++) ids.push(id = b.greedyTokens([{ inputIds: [id], cache }])![0]!);
      const st = b.deviceStats!;
      expect(st.graphCaptures).toBeGreaterThan(0); // b captured its own graph
      // the same 11 tokens as one model generating from scratch
      const ref = await b.generate({ inputIds: prompt }, { maxNewTokens: 11, temperature: 0, stopOnEos: false });
      expect(ids).toEqual(ref.tokenIds);
    } finally {
      b.dispose();
    }
  }, 120_000);

  it('a KV cache moves between the host path and the device path without losing rows', async () => {
    const model = await MoeLanguageModel.load(`${FIX}A`, { kernels: k });
    try {
      const ids = [3, 17, 42, 7, 99, 5, 11, 23];
      const ref = model.forward({ inputIds: ids }).logits.data.slice((ids.length - 1) * model.vocab);
      // prefix on the device, then two rows on the host (hidden states force it), then the rest on the device
      const cache = model.createCache();
      model.forward({ inputIds: ids.slice(0, 3), cache });
      expect(cache.device!.rows).toBe(3);
      expect(cache.hostRows).toBe(0);
      model.forward({ inputIds: ids.slice(3, 5), cache }, { outputHiddenStates: true });
      expect(cache.hostRows).toBe(5);
      const last = model.forward({ inputIds: ids.slice(5), cache }, { lastOnly: true }).logits.data;
      expect(cache.length).toBe(ids.length);
      expect(cache.device!.rows).toBe(ids.length);
      expect(maxAbs(last, ref)).toBeLessThan(1e-5);
      // truncating the cache and re-running a suffix gives the same answer
      cache.truncate(4);
      const again = model.forward({ inputIds: ids.slice(4), cache }, { lastOnly: true }).logits.data;
      expect(maxAbs(again, ref)).toBeLessThan(1e-5);
    } finally {
      model.dispose();
    }
    expect(() => model.forward({ inputIds: [1] })).toThrow(/disposed/);
  }, 120_000);
});
