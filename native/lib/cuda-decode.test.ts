/**
 * Decode speed of the MoE LM on device 'cuda' against the HBM bandwidth bound, on the perf-anchor model
 * (HF checkpoint made by ../shared/tools/perf-anchor/gen_deepseek2_moe.py). Runs only with a GPU and
 * KESTREL_ANCHOR_DIR set (check-on-gpu.sh does both); KESTREL_CUDA_BENCH_OUT names the JSON result file.
 * Bound: bytes of the weights one token reads (attention, dense MLP, top-k + shared experts, router, lm_head)
 * divided by the measured device copy bandwidth.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cudaAvailability, loadCudaKernels } from './cuda.js';
import { activeWeightBytes } from './decode-bound.js';

const avail = await cudaAvailability();
const dir = process.env.KESTREL_ANCHOR_DIR;
const why = !avail.available ? avail.reason : !dir ? 'KESTREL_ANCHOR_DIR is not set' : '';

describe.skipIf(why !== '')(`decode on device 'cuda' measured beside the bandwidth bound${why ? ` (skipped: ${why})` : ''}`, () => {
  it('times decode on the anchor model and stays within the bound it is measured against', async () => {
    const { MoeLanguageModel } = await import('@kestrel/moe');
    const k = await loadCudaKernels();
    const cfg = JSON.parse(readFileSync(join(dir!, 'config.json'), 'utf8')) as Record<string, number | null>;
    const bw = k.copyBandwidthGBs(1 << 30, 20);
    const model = await MoeLanguageModel.load(dir!, { device: 'cuda', dtype: 'bf16' });
    const prompt = Array.from({ length: 32 }, (_, i) => 2 + ((i * 37) % 250));
    const steps = 64;
    const cache = model.createCache();
    let logits = model.forward({ inputIds: prompt, cache }, { lastOnly: true }).logits.data;
    for (let s = 0; s < 4; s++) logits = model.forward({ inputIds: [argmax(logits)], cache }, { lastOnly: true }).logits.data; // warm-up
    const t0 = process.hrtime.bigint();
    for (let s = 0; s < steps; s++) logits = model.forward({ inputIds: [argmax(logits)], cache }, { lastOnly: true }).logits.data;
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    model.dispose();
    const bytes = activeWeightBytes(cfg, 2);
    const tokS = steps / sec;
    const boundTokS = (bw * 1e9) / bytes;
    const result = { device: k.device.name, copyBandwidthGBs: bw, activeWeightBytes: bytes, boundTokS, decodeTokS: tokS, fractionOfBound: tokS / boundTokS, steps, promptTokens: prompt.length };
    if (process.env.KESTREL_CUDA_BENCH_OUT) writeFileSync(process.env.KESTREL_CUDA_BENCH_OUT, `${JSON.stringify(result, null, 1)}\n`);
    console.log(JSON.stringify(result));
    // The bound is the least time the weight reads take at the measured copy bandwidth, so a measurement above
    // it (beyond timing noise and L2 hits, 1.25x) means the byte count or the timing is wrong. The speed itself is a
    // benchmark figure (KESTREL_CUDA_BENCH_OUT, BENCHMARKS.md), not asserted: the goal is not met yet (docs/cuda.md).
    expect(Number.isFinite(tokS) && tokS > 0).toBe(true);
    expect(result.fractionOfBound).toBeLessThanOrEqual(1.25);
  }, 600_000);
});

function argmax(a: Float32Array): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[b]!) b = i;
  return b;
}
