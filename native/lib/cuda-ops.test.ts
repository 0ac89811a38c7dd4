/**
 * Every CUDA op against the portable reference on random inputs (rel err <= 1e-5 f32, <= 1e-2 bf16/q8;
 * NaN never passes; outputs poisoned first). Needs a GPU: skipped, with the reason, where device 'cuda' is
 * unavailable. native/cuda/check-on-gpu.sh runs it on a GPU machine; KESTREL_CUDA_LOG names a file for
 * the per-op lines.
 */
import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import { cudaAvailability, loadCudaKernels } from './cuda.js';
import { compareWithPortable } from './cuda-check.js';

const avail = await cudaAvailability();

describe.skipIf(!avail.available)(`CUDA ops vs portable${avail.available ? '' : ` (skipped: ${avail.reason})`}`, () => {
  it('every op matches the portable reference', async () => {
    const k = await loadCudaKernels();
    const lines: string[] = [`device: ${k.device.name} (sm_${k.device.ccMajor}${k.device.ccMinor}, ${k.device.smCount} SMs, ${(k.device.totalMem / 2 ** 30).toFixed(1)} GiB)`];
    const checks = compareWithPortable(k, (l) => lines.push(l));
    if (process.env.KESTREL_CUDA_LOG) writeFileSync(process.env.KESTREL_CUDA_LOG, `${lines.join('\n')}\n`);
    const failed = checks.filter((c) => !c.pass);
    expect(failed, lines.join('\n')).toEqual([]);
  });
});
