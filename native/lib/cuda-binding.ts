/**
 * The C ABI of the CUDA backend: what the N-API shim (native/cuda/src/shim.c) exports, where the build puts it,
 * how it is loaded, the op codes, and the parameter blocks the C side takes (packed after the shared checks).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KestrelError } from '@kestrel/core';
import type { AttentionParams, LinearWeight, MoeRouteParams, RopeParams } from './contract.js';
import { checkAttention, checkRope, checkRoute, shape, type Sized } from './op-checks.js';

/** What the shim exports (see native/cuda/src/shim.c). Numbers are plain JS numbers. */
export interface CudaBinding {
  open(libPath: string): void;
  info(): CudaDeviceInfo;
  prepareLinear(format: number, n: number, k: number, data: Float32Array | Uint16Array | Int8Array, scales: Float32Array | null): unknown;
  releaseLinear(handle: unknown): void;
  linear(x: Float32Array, m: number, handle: unknown, bias: Float32Array | null, out: Float32Array): void;
  rmsnorm(x: Float32Array, m: number, n: number, w: Float32Array, eps: number, out: Float32Array): void;
  layernorm(x: Float32Array, m: number, n: number, w: Float32Array, b: Float32Array, eps: number, out: Float32Array): void;
  unary(op: number, x: Float32Array, out: Float32Array): void;
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array): void;
  softmax(x: Float32Array, m: number, n: number): void;
  embedding(handle: unknown, ids: Int32Array, out: Float32Array): void;
  rope(x: Float32Array, geom: Int32Array, positions: Int32Array, cos: Float32Array, sin: Float32Array): void;
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, geom: Int32Array, scale: number): void;
  moeRoute(logits: Float32Array, m: number, nExperts: number, cfg: Int32Array, bias: Float32Array | null, scaling: number, idx: Int32Array, weight: Float32Array, scores: Float32Array): void;
  moeExperts(x: Float32Array, m: number, h: number, handles: unknown[], idx: Int32Array, weight: Float32Array, topK: number, out: Float32Array): void;
  copyBandwidth(bytes: number, reps: number): number;
  // device-pointer layer (addresses as BigInt, 0n = null); see native/cuda/src/kestrel_cuda.h
  dAlloc(bytes: number): bigint;
  dFree(p: bigint): void;
  dUpload(dst: bigint, src: Float32Array | Int32Array): void;
  dDownload(dst: Float32Array | Int32Array, src: bigint): void;
  dSync(): void;
  dMemcpy(dst: bigint, src: bigint, bytes: number): void;
  dCopyRows(dst: bigint, ldd: number, src: bigint, lds: number, rows: number, cols: number): void;
  dLinear(x: bigint, m: number, handle: unknown, bias: bigint, out: bigint): void;
  dRmsnorm(x: bigint, m: number, n: number, ldx: number, w: bigint, eps: number, out: bigint, ldo: number): void;
  dEmbedding(handle: unknown, ids: bigint, m: number, out: bigint): void;
  dBinary(op: number, a: bigint, b: bigint, len: number, out: bigint): void;
  dRope(x: bigint, geom: Int32Array, positions: bigint, cos: bigint, sin: bigint): void;
  dAttention(q: bigint, k: bigint, v: bigint, out: bigint, geom: Int32Array, scale: number): void;
  dMoeRoute(logits: bigint, m: number, nExperts: number, cfg: Int32Array, bias: bigint, scaling: number, idx: bigint, weight: bigint, scores: bigint): void;
  moeGroup(handles: unknown[]): unknown;
  moeGroupRelease(group: unknown): void;
  dMoeExperts(x: bigint, m: number, h: number, group: unknown, idx: bigint, weight: bigint, topK: number, out: bigint, accumulate: number): void;
  dLinearAdd(x: bigint, m: number, handle: unknown, bias: bigint, out: bigint): void;
  dMlp(x: bigint, m: number, group: unknown, out: bigint, accumulate: number): void;
  dMlaPrep(q: bigint, kva: bigint, geom: Int32Array, normW: bigint, eps: number, cos: bigint, sin: bigint, positions: bigint, base: bigint, cache: bigint, qAbs: bigint): void;
  dLinearGrouped(x: bigint, m: number, ldx: number, groups: number, xGroupStride: number, handle: unknown, out: bigint, ldo: number, outGroupStride: number): void;
  dArgmax(x: bigint, m: number, n: number, out: bigint): void;
  dAttentionAt(q: bigint, k: bigint, v: bigint, out: bigint, geom: Int32Array, scale: number, base: bigint, maxTk: number): void;
  dAppendRows(cache: bigint, width: number, src: bigint, rows: number, base: bigint): void;
  wsEpoch(): number;
  graphBegin(): void;
  graphEnd(): unknown;
  graphLaunch(graph: unknown): void;
  graphRelease(graph: unknown): void;
  profiler(on: number): void;
  setQ8Activations(quantize: number): void;
}

/** The GPU the backend runs on. */
export interface CudaDeviceInfo {
  name: string;
  ccMajor: number;
  ccMinor: number;
  /** bytes of device memory */
  totalMem: number;
  smCount: number;
}


const BUILD_DIR = process.env.KESTREL_CUDA_DIR ?? fileURLToPath(new URL('../cuda/build/', import.meta.url));
/** Where the build puts the shim and the library (override with KESTREL_CUDA_DIR). */
export const CUDA_PATHS = { shim: join(BUILD_DIR, 'kestrel_cuda.node'), lib: join(BUILD_DIR, 'libkestrel_cuda.so') } as const;

/** Op codes of the C ABI (kestrel_cuda.h). */
export const FORMAT: Record<LinearWeight['format'], number> = { f32: 0, bf16: 1, q8: 2 };
export const UNARY = { gelu_tanh: 0, gelu_erf: 1, silu: 2 } as const;
export const BINARY = { add: 0, mul: 1, swiglu: 2 } as const;

function unavailable(reason: string, cause?: unknown): KestrelError {
  return new KestrelError('E_BACKEND_UNAVAILABLE', `device 'cuda' is not available: ${reason}`, cause !== undefined ? { cause } : undefined);
}

/**
 * Load the shim and open the library. `paths` and `requireFn` exist for tests. Throws
 * `E_BACKEND_UNAVAILABLE` with the reason: not built, not on Linux x64, no driver, no GPU, old GPU.
 */
export function loadCudaBinding(paths: { shim: string; lib: string } = CUDA_PATHS, requireFn: (p: string) => unknown = createRequire(import.meta.url)): CudaBinding {
  if (process.platform !== 'linux') throw unavailable(`the CUDA backend is built for Linux only (this is ${process.platform})`);
  if (!existsSync(paths.shim) || !existsSync(paths.lib)) {
    throw unavailable(`the CUDA library is not built (${!existsSync(paths.lib) ? paths.lib : paths.shim} is missing); run \`npm run build:cuda\` (needs nvcc)`);
  }
  let b: CudaBinding;
  try {
    b = requireFn(paths.shim) as CudaBinding;
  } catch (e) {
    throw unavailable(`the CUDA shim failed to load (${(e as Error).message}); rebuild it with \`npm run build:cuda\``, e);
  }
  try {
    b.open(paths.lib);
  } catch (e) {
    throw unavailable((e as Error).message, e);
  }
  return b;
}

/** The attention geometry as the C ABI takes it, after checking it against the buffers. */
export function attentionGeometry(q: Sized, k: Sized, v: Sized, out: Sized, p: AttentionParams): Int32Array {
  checkAttention(q, k, v, out, p);
  shape(p.dqk <= 12288, 'attention', `dqk ${p.dqk} exceeds the kernel's 48 KB query buffer`);
  return Int32Array.from([p.tq, p.tk, p.nHeads, p.nKvHeads, p.dqk, p.dv, p.qStride, p.kStride, p.vStride, p.outStride, p.causal ? 1 : 0, p.qPos0]);
}

/** The rope geometry as the C ABI takes it, after checking it against the buffers (null positions: on the device). */
export function ropeGeometry(x: Sized, p: RopeParams, positions: Int32Array | null, cos: Sized, sin: Sized): Int32Array {
  checkRope(x, p, positions, cos, sin);
  return Int32Array.from([p.m, p.nHeads, p.headStride, p.rowStride, p.offset, p.dim, p.interleaved ? 1 : 0]);
}

/** The router configuration as the C ABI takes it, after checking it. */
export function routeConfig(logits: Sized, m: number, nExperts: number, p: MoeRouteParams, idx: Sized, weight: Sized, scores: Sized): Int32Array {
  checkRoute(logits, m, nExperts, p, idx, weight, scores);
  const scoring = p.scoring === 'softmax' ? 0 : 1;
  const method = p.method === 'greedy' ? 0 : p.method === 'group_limited_greedy' ? 1 : 2;
  return Int32Array.from([p.topK, scoring, method, p.method === 'greedy' ? 1 : p.nGroup, p.method === 'greedy' ? 1 : p.topkGroup, p.normTopkProb ? 1 : 0]);
}

/** Runs one binding call: shape errors and KestrelErrors pass through, a library failure becomes E_INTERNAL naming the op. */
export function runOp(op: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof RangeError || e instanceof KestrelError) throw e;
    throw new KestrelError('E_INTERNAL', `cuda ${op} failed: ${(e as Error).message}`, { cause: e });
  }
}
