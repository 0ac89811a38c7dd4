#!/usr/bin/env node
// Builds the CUDA backend into native/cuda/build/:
//   libkestrel_cuda.so   nvcc: the kernels + C ABI (CUDA runtime linked statically; it finds the driver at run time)
//   kestrel_cuda.node    cc: the N-API shim that dlopen()s the library, so it loads without a GPU
// Warnings are errors (host: -Wall -Wextra; device: all nvcc warnings).
// Flags: --targets=all (default: sm_80, sm_90 and compute_90 PTX) | --targets=sm90 (quick check: sm_90 + PTX),
//        --out=DIR, --lib-only, --if-nvcc (exit 0 with a note when nvcc is absent: CI without CUDA).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, def) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : def;
};
const flag = (name) => process.argv.includes(`--${name}`);

export const TARGETS = {
  all: ['-gencode', 'arch=compute_80,code=sm_80', '-gencode', 'arch=compute_90,code=sm_90', '-gencode', 'arch=compute_90,code=compute_90'],
  sm90: ['-gencode', 'arch=compute_90,code=[sm_90,compute_90]'],
};

function findNvcc() {
  const cands = [process.env.NVCC, process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin', 'nvcc'), '/usr/local/cuda/bin/nvcc'];
  for (const c of cands) if (c && existsSync(c)) return c;
  const w = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' });
  return w.status === 0 && w.stdout.trim() ? w.stdout.trim() : null;
}

function nodeInclude() {
  const cands = [process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'), resolve(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'];
  for (const c of cands) if (c && existsSync(join(c, 'node_api.h'))) return c;
  return null;
}

function run(cmd, args) {
  console.log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: here, encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (text.trim()) process.stdout.write(text);
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} exited with ${r.status}`);
  // warning-free is part of the build contract: treat any diagnostic text as a failure
  if (/warning/i.test(text)) throw new Error(`${cmd} printed warnings`);
}

const nvcc = findNvcc();
if (!nvcc) {
  const msg = 'nvcc not found (set NVCC or CUDA_HOME); the CUDA backend was not built';
  if (flag('if-nvcc')) {
    console.log(`@kestrel/native: ${msg}. Skipping.`);
    process.exit(0);
  }
  console.error(`@kestrel/native: ${msg}`);
  process.exit(1);
}

const targets = TARGETS[arg('targets', 'all')];
if (!targets) {
  console.error(`unknown --targets; use ${Object.keys(TARGETS).join(' or ')}`);
  process.exit(1);
}
const out = resolve(arg('out', join(here, 'build')));
mkdirSync(out, { recursive: true });

try {
  // Build to a temporary name and rename, so a failed build never leaves a half-written library.
  const lib = join(out, 'libkestrel_cuda.so');
  const tmpLib = `${lib}.tmp-${process.pid}`;
  run(nvcc, [
    '-std=c++17', '-O3', '-shared', ...targets,
    '-Werror', 'all-warnings',
    '-Xcompiler', '-fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror',
    '-Isrc', '-o', tmpLib, 'src/kernels.cu',
  ]);
  renameSync(tmpLib, lib);
  if (!flag('lib-only')) {
    const inc = nodeInclude();
    if (!inc) throw new Error('node_api.h not found (install the Node headers or set npm_config_nodedir)');
    const shim = join(out, 'kestrel_cuda.node');
    const tmpShim = `${shim}.tmp-${process.pid}`;
    run(process.env.CC ?? 'cc', ['-O2', '-fPIC', '-shared', '-std=c11', '-Wall', '-Wextra', '-Werror', `-I${inc}`, '-Isrc', '-DNODE_GYP_MODULE_NAME=kestrel_cuda', '-o', tmpShim, 'src/shim.c', '-ldl']);
    renameSync(tmpShim, shim);
  }
  console.log(`@kestrel/native: CUDA backend built in ${out}`);
} catch (e) {
  for (const f of [`libkestrel_cuda.so.tmp-${process.pid}`, `kestrel_cuda.node.tmp-${process.pid}`]) rmSync(join(out, f), { force: true });
  console.error(`@kestrel/native: CUDA build failed: ${e.message}`);
  process.exit(1);
}
