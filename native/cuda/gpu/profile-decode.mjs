#!/usr/bin/env node
// Where a decode step's time goes, for `ncu --profile-from-start off` (check-on-gpu.sh step 7 wraps this in ncu).
// Loads the anchor checkpoint on device 'cuda', prefills a 32-token prompt, times greedy steps op by op and as
// CUDA graphs (no profiler range open), then opens the profiler range around --steps op-by-op steps, so ncu
// records exactly those kernels. Prints one JSON line; writes $OUT/profile-steps.json when OUT is set.
//   node native/cuda/gpu/profile-decode.mjs --dir ANCHOR_HF_DIR [--dtype bf16] [--steps 3]
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MoeLanguageModel } from '@kestrel/moe';

const { values: args } = parseArgs({
  options: { dir: { type: 'string', default: process.env.KESTREL_ANCHOR_DIR ?? '' }, dtype: { type: 'string', default: 'bf16' }, steps: { type: 'string', default: '3' } },
});
const { dir, dtype } = args;
const steps = Number(args.steps);
if (!dir || !(steps > 0)) {
  console.error('usage: profile-decode.mjs --dir ANCHOR_HF_DIR [--dtype bf16|int8] [--steps N]');
  process.exit(2);
}
const sec = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

const model = await MoeLanguageModel.load(dir, { device: 'cuda', dtype });
const ops = model.kernels.deviceOps;
try {
  const prompt = Array.from({ length: 32 }, (_, i) => 2 + ((i * 37) % 250));
  const cache = model.createCache();
  const next = (ids) => model.greedyTokens([{ inputIds: ids, cache }])[0];
  let id = next(prompt);
  const timed = (graphs, n) => {
    model.cudaGraphs = graphs;
    for (let s = 0; s < 3; s++) id = next([id]); // warm-up (and graph capture)
    const t0 = process.hrtime.bigint();
    for (let s = 0; s < n; s++) id = next([id]);
    return (sec(t0) * 1e3) / n;
  };
  const msEager = timed(false, 32);
  const msGraph = timed(true, 32);
  model.cudaGraphs = false;
  id = next([id]);
  ops.profilerRange(true);
  for (let s = 0; s < steps; s++) id = next([id]);
  ops.profilerRange(false);
  const out = { dtype, steps, msPerTokenEager: Number(msEager.toFixed(4)), msPerTokenGraph: Number(msGraph.toFixed(4)), cacheRows: cache.length };
  console.log(JSON.stringify(out));
  if (process.env.OUT) {
    mkdirSync(process.env.OUT, { recursive: true });
    writeFileSync(join(process.env.OUT, 'profile-steps.json'), `${JSON.stringify(out)}\n`);
  }
} finally {
  model.dispose();
}
