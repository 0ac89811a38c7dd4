/**
 * The CUDA sources compile warning-free (host -Wall -Wextra, all nvcc warnings as errors) when nvcc is
 * installed; CI without CUDA skips this with the reason. One target (sm_90 + its PTX) keeps it quick;
 * `npm run build:cuda` builds all targets (sm_80, sm_90, compute_90 PTX).
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isKestrelError } from '@kestrel/core';
import { loadCudaBinding } from './cuda-binding.js';

function findNvcc(): string | null {
  for (const c of [process.env.NVCC, process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin', 'nvcc'), '/usr/local/cuda/bin/nvcc']) if (c && existsSync(c)) return c;
  const w = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  return w.status === 0 && w.stdout.trim() ? w.stdout.trim() : null;
}

const nvcc = findNvcc();
const script = fileURLToPath(new URL('../cuda/build.mjs', import.meta.url));

describe.skipIf(!nvcc)(`CUDA build${nvcc ? '' : ' (skipped: nvcc not found; set NVCC or CUDA_HOME to run it)'}`, () => {
  it('compiles kernels.cu (sm_90 + PTX) and the N-API shim without a warning; the shim loads here', () => {
    const out = mkdtempSync(join(tmpdir(), 'kestrel-cuda-'));
    try {
      const r = spawnSync(process.execPath, [script, '--targets=sm90', `--out=${out}`], { encoding: 'utf8', env: { ...process.env, NVCC: nvcc! } });
      const text = `${r.stdout}${r.stderr}`;
      expect(r.status, text).toBe(0);
      // the compilers' own output (the echoed command lines start with '$ ')
      const diagnostics = text.split('\n').filter((l) => !l.startsWith('$ ')).join('\n');
      expect(diagnostics).not.toMatch(/warning/i);
      const paths = { shim: join(out, 'kestrel_cuda.node'), lib: join(out, 'libkestrel_cuda.so') };
      expect(existsSync(paths.shim) && existsSync(paths.lib)).toBe(true);
      // Loading works everywhere; opening needs a driver and a GPU, and says so when they are absent.
      let err: unknown = null;
      try {
        loadCudaBinding(paths);
      } catch (e) {
        err = e;
      }
      if (err !== null) {
        expect(isKestrelError(err, 'E_BACKEND_UNAVAILABLE')).toBe(true);
        expect((err as Error).message).toMatch(/driver|GPU|compute capability/);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});
