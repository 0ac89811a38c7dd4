/**
 * Test support: builds the CPU stand-in of libkestrel_cuda.so (native/cuda/test/fake_kc.cc, same C ABI,
 * computed on the host in double) and the real N-API shim into a temporary folder, so the CUDA backend's
 * host stack runs for real without a GPU. Not part of the public API.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCudaKernels, type CudaKernels } from './cuda.js';
import { loadCudaBinding } from './cuda-binding.js';

const cudaDir = fileURLToPath(new URL('../cuda/', import.meta.url));
const nodeInc = [resolve(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].find((d) => existsSync(join(d, 'node_api.h')));
const hasCc = spawnSync('sh', ['-c', 'command -v cc && command -v c++'], { encoding: 'utf8' }).status === 0;

/** Why the stand-in cannot be built here ('' when it can). */
export const standInUnavailable: string = process.platform !== 'linux' ? 'Linux only' : !hasCc ? 'no cc/c++ compiler' : !nodeInc ? 'node_api.h not found' : '';

/** Build the stand-in library and the shim; returns their paths and a cleanup function. */
export function buildCudaStandIn(): { shim: string; lib: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-cuda-fake-'));
  const run = (cmd: string, args: string[]): void => {
    const r = spawnSync(cmd, args, { cwd: cudaDir, encoding: 'utf8' });
    const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    if (r.status !== 0) throw new Error(`${cmd} failed: ${text}`);
    if (/warning/i.test(text)) throw new Error(`${cmd} printed warnings: ${text}`);
  };
  run('c++', ['-O1', '-shared', '-fPIC', '-std=c++17', '-Wall', '-Wextra', '-Werror', '-o', join(dir, 'libkestrel_cuda.so'), 'test/fake_kc.cc']);
  run('cc', ['-O1', '-shared', '-fPIC', '-std=c11', '-Wall', '-Wextra', '-Werror', `-I${nodeInc}`, '-Isrc', '-DNODE_GYP_MODULE_NAME=kestrel_cuda', '-o', join(dir, 'kestrel_cuda.node'), 'src/shim.c', '-ldl']);
  return { shim: join(dir, 'kestrel_cuda.node'), lib: join(dir, 'libkestrel_cuda.so'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The CUDA kernels over a freshly built stand-in (real shim, CPU library); `cleanup` removes the build. */
export function cudaStandInKernels(): { kernels: CudaKernels; shim: string; lib: string; cleanup: () => void } {
  const paths = buildCudaStandIn();
  try {
    return { ...paths, kernels: createCudaKernels(loadCudaBinding(paths)) };
  } catch (e) {
    paths.cleanup();
    throw e;
  }
}
