#!/usr/bin/env node
// Decode speed of the MoE LM on device 'cuda' against the HBM bandwidth bound, in plain Node (no vitest): the
// same measurement as native/lib/cuda-decode.test.ts, for the GPU machine (see native/cuda/gpu/README.md).
// The model is the perf-anchor HF checkpoint (gen_deepseek2_moe.py --gguf '' --hf bf16).
//   bound tok/s = device copy bandwidth / bytes of weights one token reads (native/dist/decode-bound.js)
// Per dtype: load time, prefill of the 32-token prompt (cold = first forward, warm = again on a new cache),
// 4 warm-up decode steps, then --steps timed single-token greedy decode steps.
// Prints one line per dtype; writes $OUT/decode.json when OUT is set. Exit 1 when a run fails.
//   node native/cuda/gpu/run-decode.mjs [--dir ANCHOR_HF_DIR (default $KESTREL_ANCHOR_DIR)] [--steps 64]
//        [--dtype bf16|int8|all] [--device cuda|cpu] [--bw GBs (bandwidth for --device cpu)]
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MoeLanguageModel, argmax } from '@kestrel/moe';
import { BYTES_PER_PARAM, activeWeightBytes, loadCudaKernels } from '@kestrel/native';

let args;
try {
  args = parseArgs({
    options: {
      dir: { type: 'string', default: process.env.KESTREL_ANCHOR_DIR ?? '' }, steps: { type: 'string', default: '64' },
      dtype: { type: 'string', default: 'bf16' }, device: { type: 'string', default: 'cuda' }, bw: { type: 'string' },
    },
  }).values;
} catch (e) {
  args = { error: e.message };
}
const { dir, device } = args;
const steps = Number(args.steps);
const dtypes = args.dtype === 'all' ? ['bf16', 'int8'] : [args.dtype];
if (args.error || !dir || !(steps > 0) || !dtypes.every((d) => ['bf16', 'int8', 'f32'].includes(d)) || !['cuda', 'cpu'].includes(device)) {
  console.error(`${args.error ? `${args.error}\n` : ''}usage: run-decode.mjs --dir ANCHOR_HF_DIR (or KESTREL_ANCHOR_DIR) [--steps N] [--dtype bf16|int8|all] [--device cuda|cpu] [--bw GBs]`);
  process.exit(2);
}

const sec = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const r3 = (x) => (x == null ? null : Number(x.toPrecision(4)));

const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
let bw = args.bw ? Number(args.bw) : null;
let deviceName = device;
if (device === 'cuda') {
  const k = await loadCudaKernels();
  deviceName = k.device.name;
  const t0 = process.hrtime.bigint();
  bw = k.copyBandwidthGBs(1 << 30, 20);
  console.log(`device ${deviceName}: copy bandwidth ${bw.toFixed(1)} GB/s (1 GiB x 20, ${sec(t0).toFixed(2)}s)`);
}
const prompt = Array.from({ length: 32 }, (_, i) => 2 + ((i * 37) % 250));

const results = [];
let failed = 0;
for (const dtype of dtypes) {
  const r = { dtype, device: deviceName, ok: false };
  try {
    let t0 = process.hrtime.bigint();
    const model = await MoeLanguageModel.load(dir, { device, dtype });
    r.loadS = r3(sec(t0));
    try {
      const bytes = activeWeightBytes(cfg, BYTES_PER_PARAM[dtype]);
      const boundTokS = bw ? (bw * 1e9) / bytes : null;
      // One timed decode run: prefill the prompt, 4 warm-up steps, then `steps` single-token steps.
      //   greedy: the argmax is taken on the GPU and only the id comes back (what generate() does at temperature 0)
      //   logits: every step copies the logits back and the argmax is taken here
      const decode = (mode, graphs, q8act = 'int8', fused = false) => {
        if (model.deviceStats) {
          model.cudaGraphs = graphs;
          model.cudaFusedOps = fused;
        }
        if (dtype === 'int8' && model.kernels.setQ8Activations) model.kernels.setQ8Activations(q8act);
        const cache = model.createCache();
        let t0 = process.hrtime.bigint();
        const next = (ids) => {
          if (mode === 'greedy') return model.greedyTokens([{ inputIds: ids, cache }])[0];
          return argmax(model.forward({ inputIds: ids, cache }, { lastOnly: true }).logits.data);
        };
        let id = next(prompt);
        const prefillMs = sec(t0) * 1e3;
        for (let s = 0; s < 4; s++) id = next([id]);
        const ids = [];
        t0 = process.hrtime.bigint();
        for (let s = 0; s < steps; s++) { id = next([id]); ids.push(id); }
        const dt = sec(t0);
        const tokS = steps / dt;
        if (dtype === 'int8' && model.kernels.setQ8Activations) model.kernels.setQ8Activations('int8');
        if (model.deviceStats) model.cudaFusedOps = false;
        return { mode, graphs, q8act, fused, tokS: r3(tokS), msPerToken: r3((dt * 1e3) / steps), fractionOfBound: boundTokS ? r3(tokS / boundTokS) : null, prefillMs: r3(prefillMs), ids };
      };
      const runs = [];
      const plan = device === 'cuda' && model.deviceStats ? [['greedy', true], ['greedy', true], ['logits', true], ['greedy', false]] : [['logits', false]];
      // int8 only: q8 weights with f32 activations (kc_set_q8_activations(0)) beside the default int8 activations
      if (dtype === 'int8' && device === 'cuda' && model.kernels.setQ8Activations) plan.push(['greedy', true, 'f32']);
      // experimental fused ops (residual adds in the products, 2-launch MLPs), graphs on and off
      if (device === 'cuda' && model.deviceStats) plan.push(['greedy', true, 'int8', true], ['greedy', false, 'int8', true]);
      for (const [mode, graphs, q8act, fused] of plan) {
        const x = decode(mode, graphs, q8act, fused);
        runs.push(x);
        console.log(`  ${dtype} decode (${mode === 'greedy' ? 'argmax on the GPU' : 'logits copied back'}, ${graphs ? 'CUDA graph per step' : 'op by op'}${x.q8act === 'f32' ? ', q8 with f32 activations' : ''}${x.fused ? ', fused ops' : ''}): ${x.tokS} tok/s, ${x.msPerToken} ms/token, ${x.fractionOfBound ?? '?'} of the bound; prefill ${prompt.length} tokens ${x.prefillMs} ms`);
      }
      // int8 activations and f32 activations are different arithmetic: compare ids within each kind
      // fused ops add in another order (f32 rounding), so their ids are compared as agreement, like f32 activations
      const same = runs.filter((x) => x.q8act !== 'f32' && !x.fused).every((x) => JSON.stringify(x.ids) === JSON.stringify(runs[0].ids));
      const fusedRuns = runs.filter((x) => x.fused);
      const agreeFused = fusedRuns.length ? Math.min(...fusedRuns.map((f) => f.ids.filter((v, i) => v === runs[0].ids[i]).length)) : null;
      const f32act = runs.find((x) => x.q8act === 'f32');
      const agreeF32Act = f32act ? f32act.ids.filter((v, i) => v === runs[0].ids[i]).length : null;
      const dflt = runs.filter((x) => x.q8act !== 'f32' && !x.fused);
      const best = dflt.reduce((a, x) => (x.tokS > a.tokS ? x : a), dflt[0]);
      const ids = runs[0].ids;
      for (const x of runs) delete x.ids;
      if (agreeF32Act !== null) console.log(`  int8 greedy ids with f32 activations agree with int8 activations on ${agreeF32Act}/${steps} steps`);
      if (agreeFused !== null) console.log(`  ${dtype} greedy ids with fused ops agree with the default on ${agreeFused}/${steps} steps`);
      Object.assign(r, {
        ok: same, steps, promptTokens: prompt.length, decodeTokS: best.tokS, msPerToken: best.msPerToken, bestMode: `${best.mode}/${best.graphs ? 'graphs' : 'eager'}`,
        boundTokS: r3(boundTokS), fractionOfBound: best.fractionOfBound, copyBandwidthGBs: r3(bw), activeWeightBytes: bytes,
        prefillColdMs: runs[0].prefillMs, prefillWarmMs: runs.at(-1).prefillMs, prefillTokS: r3(prompt.length / (runs.at(-1).prefillMs / 1e3)),
        sameIdsAcrossModes: same, firstIds: ids.slice(0, 8), runs, deviceStats: model.deviceStats,
        ...(agreeF32Act !== null ? { q8F32ActIdsAgreeing: `${agreeF32Act}/${steps}` } : {}),
        ...(agreeFused !== null ? { fusedIdsAgreeing: `${agreeFused}/${steps}` } : {}),
      });
      if (!same) console.log(`  FAIL ${dtype}: the greedy ids differ between modes`);
    } finally {
      model.dispose();
    }
    console.log(`decode ${dtype}: ${r.decodeTokS} tok/s, ${r.msPerToken} ms/token over ${steps} steps after a ${prompt.length}-token prompt; ` +
      `bound ${r.boundTokS ?? '?'} tok/s (${(r.activeWeightBytes / 1e6).toFixed(1)} MB/token at ${r.copyBandwidthGBs ?? '?'} GB/s), fraction of bound ${r.fractionOfBound ?? '?'}; ` +
      `prefill ${prompt.length} tokens: first ${r.prefillColdMs} ms, last ${r.prefillWarmMs} ms (${r.prefillTokS} tok/s); load ${r.loadS}s; best mode ${r.bestMode}`);
    if (!r.ok) failed++;
  } catch (e) {
    failed++;
    r.error = `${e?.code ? `${e.code}: ` : ''}${e?.message ?? e}`.split('\n')[0];
    console.log(`FAIL decode ${dtype}: ${r.error}`);
  }
  results.push(r);
}

if (process.env.OUT) {
  mkdirSync(process.env.OUT, { recursive: true });
  writeFileSync(join(process.env.OUT, 'decode.json'), `${JSON.stringify({ dir, node: process.version, results }, null, 1)}\n`);
}
process.exit(failed ? 1 : 0);
