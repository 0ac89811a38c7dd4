/**
 * The whole host stack of the CUDA backend, run for real without a GPU: the N-API shim (shim.c) and the
 * ctypes driver (check_ops.py) talk to a CPU stand-in of libkestrel_cuda.so (native/cuda/test/fake_kc.cc, same
 * C ABI, computed in double). The wrapper then goes through the real shim: argument marshalling, handles,
 * release, and errors. The device kernels themselves are not exercised here (check-on-gpu.sh does that).
 * Needs a C/C++ compiler and the Node headers; skipped with the reason otherwise.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCudaKernels, loadCudaBinding, type CudaKernels } from './cuda.js';
import { compareWithPortable } from './cuda-check.js';
import type { LinearWeight } from './contract.js';

const cudaDir = fileURLToPath(new URL('../cuda/', import.meta.url));
const nodeInc = [resolve(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].find((d) => existsSync(join(d, 'node_api.h')));
const hasCc = spawnSync('sh', ['-c', 'command -v cc && command -v c++'], { encoding: 'utf8' }).status === 0;
const why = process.platform !== 'linux' ? 'Linux only' : !hasCc ? 'no cc/c++ compiler' : !nodeInc ? 'node_api.h not found' : '';

describe.skipIf(why !== '')(`CUDA host stack on a CPU stand-in library${why ? ` (skipped: ${why})` : ''}`, () => {
  let dir = '';
  let k: CudaKernels;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kestrel-cuda-fake-'));
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { cwd: cudaDir, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stdout}${r.stderr}`);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/warning/i);
    };
    run('c++', ['-O1', '-shared', '-fPIC', '-std=c++17', '-Wall', '-Wextra', '-Werror', '-o', join(dir, 'libkestrel_cuda.so'), 'test/fake_kc.cc']);
    run('cc', ['-O1', '-shared', '-fPIC', '-std=c11', '-Wall', '-Wextra', '-Werror', `-I${nodeInc}`, '-Isrc', '-DNODE_GYP_MODULE_NAME=kestrel_cuda', '-o', join(dir, 'kestrel_cuda.node'), 'src/shim.c', '-ldl']);
    k = createCudaKernels(loadCudaBinding({ shim: join(dir, 'kestrel_cuda.node'), lib: join(dir, 'libkestrel_cuda.so') }));
  }, 120_000);
  afterAll(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

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
    const b = loadCudaBinding({ shim: join(dir, 'kestrel_cuda.node'), lib: join(dir, 'libkestrel_cuda.so') });
    expect(() => b.rope(new Float32Array(8), Int32Array.from([1, 1, 8, 8, 0, 8, 0]), Int32Array.from([5]), new Float32Array(8), new Float32Array(8))).toThrow(/position out of range/);
  });

  const py = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  it.skipIf(py.status !== 0)('check_ops.py drives the C ABI through ctypes: every case passes on the stand-in', () => {
    const r = spawnSync('python3', [join(cudaDir, 'check_ops.py'), '--lib', join(dir, 'libkestrel_cuda.so')], { encoding: 'utf8' });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/(\d+)\/\1 ops pass/);
  }, 60_000);
});
