/**
 * The whole host stack of the CUDA backend, run for real without a GPU: the N-API shim (shim.c) and the
 * ctypes driver (check_ops.py) talk to a CPU stand-in of libkestrel_cuda.so (native/cuda/test/fake_kc.cc, same
 * C ABI, computed in double). The wrapper then goes through the real shim: argument marshalling, handles,
 * release, and errors. The device kernels themselves are not exercised here (check-on-gpu.sh does that).
 * Needs a C/C++ compiler and the Node headers; skipped with the reason otherwise.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCudaKernels, type CudaKernels } from './cuda.js';
import { loadCudaBinding } from './cuda-binding.js';
import { compareWithPortable } from './cuda-check.js';
import { buildCudaStandIn, standInUnavailable as why } from './cuda-standin.js';
import type { LinearWeight } from './contract.js';

const cudaDir = fileURLToPath(new URL('../cuda/', import.meta.url));

describe.skipIf(why !== '')(`CUDA host stack on a CPU stand-in library${why ? ` (skipped: ${why})` : ''}`, () => {
  let paths: ReturnType<typeof buildCudaStandIn>;
  let k: CudaKernels;
  beforeAll(() => {
    paths = buildCudaStandIn();
    k = createCudaKernels(loadCudaBinding(paths));
  }, 120_000);
  afterAll(() => paths?.cleanup());

  it('every op through the real shim matches the portable op (f32 tolerance even for bf16/q8: the stand-in is exact)', () => {
    expect(k.device.name).toBe('CPU stand-in');
    const lines: string[] = [];
    const checks = compareWithPortable(k, (l) => lines.push(l));
    expect(checks.filter((c) => !(c.err <= 1e-5)), lines.join('\n')).toEqual([]);
  });

  it('handles: release through the shim, then use throws; a bad handle is a type error', () => {
    const w: LinearWeight = { format: 'f32', n: 2, k: 3, data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
    const p = k.prepareLinear(w);
    const out = new Float32Array(2);
    k.linear(Float32Array.from([1, 0, -1]), 1, p, null, out);
    expect(Array.from(out)).toEqual([-2, -2]);
    k.releaseLinear(p);
    expect(() => k.linear(Float32Array.from([1, 0, -1]), 1, p, null, out)).toThrow(/released/);
    const forged = { ...w, handle: { cuda: 42 } };
    expect(() => k.linear(Float32Array.from([1, 0, -1]), 1, forged, null, out)).toThrow(/handle/);
  });

  it('library errors come back as exceptions with kc_last_error (rope position checked in C too)', () => {
    const b = loadCudaBinding(paths);
    expect(() => b.rope(new Float32Array(8), Int32Array.from([1, 1, 8, 8, 0, 8, 0]), Int32Array.from([5]), new Float32Array(8), new Float32Array(8))).toThrow(/position out of range/);
  });

  const py = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  it.skipIf(py.status !== 0)('check_ops.py drives the C ABI through ctypes: every case passes on the stand-in', () => {
    const r = spawnSync('python3', [join(cudaDir, 'check_ops.py'), '--lib', paths.lib], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/(\d+)\/\1 ops pass/);
  }, 60_000);
});
