/**
 * The CUDA backend of the kernel contract. native/cuda/build/kestrel_cuda.node (a thin N-API shim) is loaded
 * at run time only; it dlopen()s libkestrel_cuda.so, which finds the NVIDIA driver at run time. Without
 * the build, a driver or a GPU, {@link loadCudaKernels} throws `E_BACKEND_UNAVAILABLE` saying which.
 *
 * This file also holds the host-side logic that does not need a GPU: argument and shape checks (so no bad
 * length reaches C), the fallback for weights that were not prepared on the device, and the expert
 * placement plan (`expertsOn`).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KestrelError } from '@kestrel/core';
import { createDeviceOps, type DeviceOps } from './cuda-device.js';
import { Q8_BLOCK, type AttentionParams, type ExpertWeights, type Kernels, type LinearWeight, type MoeRouteParams, type PreparedLinear, type RopeParams } from './contract.js';

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

/** The CUDA kernels: the contract plus device facts and explicit release of device weights. */
export type CudaKernels = Kernels & {
  readonly device: CudaDeviceInfo;
  /** Frees the device copy now (dispose); using the weight afterwards throws. */
  releaseLinear(w: PreparedLinear): void;
  /** Device-to-device copy bandwidth in GB/s (read + write), the bound decode is measured against. */
  copyBandwidthGBs(bytes?: number, reps?: number): number;
  /** The same ops on buffers that stay on the GPU (device-resident decode). */
  readonly deviceOps: DeviceOps;
  /**
   * How q8 weights meet activations, for every later op: 'int8' (default; activations quantized per block of 32
   * and dp4a, as the CPU addon) or 'f32' (weights dequantized in registers; closer to the portable op).
   * KESTREL_CUDA_Q8_ACT=f32 sets it at load.
   */
  setQ8Activations(mode: 'int8' | 'f32'): void;
};

const BUILD_DIR = process.env.KESTREL_CUDA_DIR ?? fileURLToPath(new URL('../cuda/build/', import.meta.url));
/** Where the build puts the shim and the library (override with KESTREL_CUDA_DIR). */
export const CUDA_PATHS = { shim: join(BUILD_DIR, 'kestrel_cuda.node'), lib: join(BUILD_DIR, 'libkestrel_cuda.so') } as const;

const FORMAT: Record<LinearWeight['format'], number> = { f32: 0, bf16: 1, q8: 2 };
const UNARY = { gelu_tanh: 0, gelu_erf: 1, silu: 2 } as const;
const BINARY = { add: 0, mul: 1, swiglu: 2 } as const;

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

let cached: { kernels: CudaKernels } | { error: KestrelError } | null = null;

/**
 * The CUDA kernels (process-wide, loaded once). Throws `E_BACKEND_UNAVAILABLE` with the reason when this
 * machine cannot run them; the result of the first attempt is remembered.
 */
export async function loadCudaKernels(): Promise<CudaKernels> {
  if (!cached) {
    try {
      cached = { kernels: createCudaKernels(loadCudaBinding()) };
    } catch (e) {
      if (!(e instanceof KestrelError)) throw e;
      cached = { error: e };
    }
  }
  if ('error' in cached) throw cached.error;
  return cached.kernels;
}

/** Whether device 'cuda' can be used here, and why not (does not throw). */
export async function cudaAvailability(): Promise<{ available: true; device: CudaDeviceInfo } | { available: false; reason: string }> {
  try {
    const k = await loadCudaKernels();
    return { available: true, device: k.device };
  } catch (e) {
    return { available: false, reason: (e as Error).message };
  }
}

// ---------------------------------------------------------------------------------------------
// shape checks: every length the C side trusts is checked here first

export function shape(cond: boolean, op: string, msg: string): void {
  if (!cond) throw new RangeError(`cuda ${op}: ${msg}`);
}

export function count(v: number, op: string, name: string): void {
  shape(Number.isInteger(v) && v >= 0 && v <= 0x7fffffff, op, `${name} must be a non-negative int32, got ${v}`);
}

function checkWeight(w: LinearWeight, op: string): void {
  count(w.n, op, 'n');
  count(w.k, op, 'k');
  if (w.format === 'q8') {
    const kp = Math.ceil(w.k / Q8_BLOCK) * Q8_BLOCK;
    shape(w.data instanceof Int8Array && w.data.length >= w.n * kp, op, `q8 data must be an Int8Array of n*kp = ${w.n * kp}`);
    shape(w.scales instanceof Float32Array && w.scales.length >= (w.n * kp) / Q8_BLOCK, op, `q8 scales must hold n*kp/32 = ${(w.n * kp) / Q8_BLOCK}`);
  } else if (w.format === 'bf16') {
    shape(w.data instanceof Uint16Array && w.data.length >= w.n * w.k, op, `bf16 data must be a Uint16Array of n*k = ${w.n * w.k}`);
  } else if (w.format === 'f32') {
    shape(w.data instanceof Float32Array && w.data.length >= w.n * w.k, op, `f32 data must be a Float32Array of n*k = ${w.n * w.k}`);
  } else {
    shape(false, op, `unknown weight format ${(w as { format: string }).format}`);
  }
}

/** Highest element index + 1 touched by `rows` rows of `stride` whose last row uses `width` elements. */
function extent(rows: number, stride: number, width: number): number {
  return rows === 0 ? 0 : (rows - 1) * stride + width;
}

/** The attention geometry as the C ABI takes it, after checking it against the buffers. */
/** Anything with a length in elements: a typed array, or a device view (cuda-device.ts). */
export interface Sized { readonly length: number }

export function attentionGeometry(q: Sized, k: Sized, v: Sized, out: Sized, p: AttentionParams): Int32Array {
  const op = 'attention';
  for (const key of ['tq', 'tk', 'nHeads', 'nKvHeads', 'dqk', 'dv', 'qStride', 'kStride', 'vStride', 'outStride', 'qPos0'] as const) count(p[key], op, key);
  shape(p.nKvHeads > 0 && p.nHeads % p.nKvHeads === 0, op, `nHeads ${p.nHeads} must be a multiple of nKvHeads ${p.nKvHeads}`);
  shape(p.dqk <= 12288, op, `dqk ${p.dqk} exceeds the kernel's 48 KB query buffer`);
  shape(q.length >= extent(p.tq, p.qStride, p.nHeads * p.dqk), op, 'q is shorter than tq rows of nHeads*dqk');
  shape(k.length >= extent(p.tk, p.kStride, p.nKvHeads * p.dqk), op, 'k is shorter than tk rows of nKvHeads*dqk');
  shape(v.length >= extent(p.tk, p.vStride, p.nKvHeads * p.dv), op, 'v is shorter than tk rows of nKvHeads*dv');
  shape(out.length >= extent(p.tq, p.outStride, p.nHeads * p.dv), op, 'out is shorter than tq rows of nHeads*dv');
  shape(Number.isFinite(p.scale), op, 'scale must be finite');
  return Int32Array.from([p.tq, p.tk, p.nHeads, p.nKvHeads, p.dqk, p.dv, p.qStride, p.kStride, p.vStride, p.outStride, p.causal ? 1 : 0, p.qPos0]);
}

/** The rope geometry as the C ABI takes it, after checking it against the buffers. */
export function ropeGeometry(x: Sized, p: RopeParams, positions: Int32Array | null, cos: Sized, sin: Sized): Int32Array {
  const op = 'rope';
  for (const key of ['m', 'nHeads', 'headStride', 'rowStride', 'offset', 'dim'] as const) count(p[key], op, key);
  shape(p.dim % 2 === 0 && p.dim > 0, op, `dim must be even and positive, got ${p.dim}`);
  if (p.m > 0 && p.nHeads > 0) shape(x.length >= (p.m - 1) * p.rowStride + (p.nHeads - 1) * p.headStride + p.offset + p.dim, op, 'x is shorter than the rows and heads it rotates');
  const half = p.dim / 2;
  shape(cos.length === sin.length && cos.length % half === 0, op, 'cos and sin must be tables of the same [maxPos, dim/2] shape');
  const maxPos = cos.length / half;
  // device positions (null) are checked by their producer before upload
  if (positions) shape(positions.length >= p.m, op, 'fewer positions than rows');
  if (positions) for (let r = 0; r < p.m; r++) shape(positions[r]! >= 0 && positions[r]! < maxPos, op, `position ${positions[r]} outside the table [0, ${maxPos})`);
  return Int32Array.from([p.m, p.nHeads, p.headStride, p.rowStride, p.offset, p.dim, p.interleaved ? 1 : 0]);
}

/** The router configuration as the C ABI takes it, after checking it. */
export function routeConfig(logits: Sized, m: number, nExperts: number, p: MoeRouteParams, idx: Sized, weight: Sized, scores: Sized): Int32Array {
  const op = 'moeRoute';
  count(m, op, 'm');
  shape(Number.isInteger(nExperts) && nExperts > 0 && nExperts <= 4096, op, `nExperts must be in [1, 4096], got ${nExperts}`);
  shape(Number.isInteger(p.topK) && p.topK >= 1 && p.topK <= nExperts, op, `topK must be in [1, nExperts], got ${p.topK}`);
  if (p.method !== 'greedy') {
    shape(Number.isInteger(p.nGroup) && p.nGroup > 0 && nExperts % p.nGroup === 0, op, `nExperts ${nExperts} must be a multiple of nGroup ${p.nGroup}`);
    shape(Number.isInteger(p.topkGroup) && p.topkGroup >= 1 && p.topkGroup <= p.nGroup, op, `topkGroup must be in [1, nGroup], got ${p.topkGroup}`);
  }
  if (p.method === 'noaux_tc' && p.bias) shape(p.bias.length >= nExperts, op, 'bias is shorter than nExperts');
  shape(logits.length >= m * nExperts && scores.length >= m * nExperts, op, 'logits and scores need m*nExperts');
  shape(idx.length >= m * p.topK && weight.length >= m * p.topK, op, 'idx and weight need m*topK');
  const scoring = p.scoring === 'softmax' ? 0 : p.scoring === 'sigmoid' ? 1 : -1;
  const method = p.method === 'greedy' ? 0 : p.method === 'group_limited_greedy' ? 1 : p.method === 'noaux_tc' ? 2 : -1;
  shape(scoring >= 0 && method >= 0, op, `unknown scoring/method ${p.scoring}/${p.method}`);
  return Int32Array.from([p.topK, scoring, method, p.method === 'greedy' ? 1 : p.nGroup, p.method === 'greedy' ? 1 : p.topkGroup, p.normTopkProb ? 1 : 0]);
}

// ---------------------------------------------------------------------------------------------
// the Kernels wrapper

/** Runs one binding call: shape errors and KestrelErrors pass through, a library failure becomes E_INTERNAL naming the op. */
export function runOp(op: string, f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof RangeError || e instanceof KestrelError) throw e;
    throw new KestrelError('E_INTERNAL', `cuda ${op} failed: ${(e as Error).message}`, { cause: e });
  }
}

interface DeviceHandle {
  readonly cuda: unknown;
}

function isDeviceHandle(h: unknown): h is DeviceHandle {
  return typeof h === 'object' && h !== null && 'cuda' in h;
}

/**
 * Wrap a binding as `Kernels`. Exported so the host-side logic can be tested with a stand-in binding.
 * Weights passed to `linear`/`embedding`/`moeExperts` without a CUDA handle (not prepared by this backend)
 * are uploaded once and cached per data array, so a model that skipped `prepareLinear` still runs.
 */
export function createCudaKernels(b: CudaBinding): CudaKernels {
  const device = b.info();
  if (process.env.KESTREL_CUDA_Q8_ACT === 'f32') b.setQ8Activations(0);
  const uploaded = new WeakMap<object, unknown>();
  const released = new WeakSet<object>();

  const upload = (w: LinearWeight): unknown => {
    checkWeight(w, 'prepareLinear');
    try {
      return b.prepareLinear(FORMAT[w.format], w.n, w.k, w.data, w.format === 'q8' ? w.scales : null);
    } catch (e) {
      throw new KestrelError('E_BACKEND_UNAVAILABLE', `uploading a ${w.n}x${w.k} ${w.format} weight to ${device.name} failed: ${(e as Error).message} (too little GPU memory? try expertsOn: 'cpu')`, { cause: e });
    }
  };
  const handleOf = (w: PreparedLinear, op: string): unknown => {
    if (isDeviceHandle(w.handle)) {
      shape(!released.has(w.handle), op, 'the weight was released (model disposed)');
      return w.handle.cuda;
    }
    checkWeight(w, op);
    let h = uploaded.get(w.data);
    if (h === undefined) {
      h = upload(w);
      uploaded.set(w.data, h);
    }
    return h;
  };
  const run = runOp;

  return {
    name: 'cuda',
    device,
    deviceOps: createDeviceOps(b, (w, op) => handleOf(w, op)),
    setQ8Activations(mode: 'int8' | 'f32'): void {
      shape(mode === 'int8' || mode === 'f32', 'setQ8Activations', `mode must be 'int8' or 'f32', got ${String(mode)}`);
      b.setQ8Activations(mode === 'int8' ? 1 : 0);
    },
    prepareLinear(w: LinearWeight): PreparedLinear {
      const handle: DeviceHandle = { cuda: upload(w) };
      return { ...w, handle } as PreparedLinear;
    },
    releaseLinear(w: PreparedLinear): void {
      if (isDeviceHandle(w.handle) && !released.has(w.handle)) {
        released.add(w.handle);
        b.releaseLinear(w.handle.cuda);
      }
    },
    copyBandwidthGBs(bytes = 1 << 30, reps = 20): number {
      return b.copyBandwidth(bytes, reps);
    },
    linear(x, m, w, bias, out) {
      count(m, 'linear', 'm');
      shape(x.length >= m * w.k, 'linear', `x needs m*k = ${m * w.k} elements, has ${x.length}`);
      shape(out.length >= m * w.n, 'linear', `out needs m*n = ${m * w.n} elements, has ${out.length}`);
      shape(bias === null || bias.length >= w.n, 'linear', 'bias is shorter than n');
      if (m === 0) return;
      const h = handleOf(w, 'linear');
      run('linear', () => b.linear(x, m, h, bias, out));
    },
    rmsnorm(x, m, n, weight, eps, out) {
      count(m, 'rmsnorm', 'm');
      count(n, 'rmsnorm', 'n');
      shape(x.length >= m * n && out.length >= m * n && weight.length >= n, 'rmsnorm', 'x/out need m*n and weight n elements');
      run('rmsnorm', () => b.rmsnorm(x, m, n, weight, eps, out));
    },
    layernorm(x, m, n, weight, bias, eps, out) {
      count(m, 'layernorm', 'm');
      count(n, 'layernorm', 'n');
      shape(x.length >= m * n && out.length >= m * n && weight.length >= n && bias.length >= n, 'layernorm', 'x/out need m*n and weight/bias n elements');
      run('layernorm', () => b.layernorm(x, m, n, weight, bias, eps, out));
    },
    gelu(x, out, approx) {
      shape(out.length >= x.length, 'gelu', 'out is shorter than x');
      shape(approx === 'tanh' || approx === 'erf', 'gelu', `approx must be 'tanh' or 'erf', got ${String(approx)}`);
      run('gelu', () => b.unary(approx === 'tanh' ? UNARY.gelu_tanh : UNARY.gelu_erf, x, out));
    },
    silu(x, out) {
      shape(out.length >= x.length, 'silu', 'out is shorter than x');
      run('silu', () => b.unary(UNARY.silu, x, out));
    },
    swiglu(gate, up, out) {
      shape(up.length >= gate.length && out.length >= gate.length, 'swiglu', 'up/out are shorter than gate');
      run('swiglu', () => b.binary(BINARY.swiglu, gate, up, out));
    },
    softmax(x, m, n) {
      count(m, 'softmax', 'm');
      count(n, 'softmax', 'n');
      shape(x.length >= m * n, 'softmax', 'x needs m*n elements');
      run('softmax', () => b.softmax(x, m, n));
    },
    add(a, c, out) {
      shape(c.length >= a.length && out.length >= a.length, 'add', 'operands differ in length');
      run('add', () => b.binary(BINARY.add, a, c, out));
    },
    mul(a, c, out) {
      shape(c.length >= a.length && out.length >= a.length, 'mul', 'operands differ in length');
      run('mul', () => b.binary(BINARY.mul, a, c, out));
    },
    embedding(table, ids, out) {
      shape(out.length >= ids.length * table.k, 'embedding', 'out needs ids.length*k elements');
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (!(id >= 0 && id < table.n)) throw new RangeError(`embedding: token id ${id} outside [0, ${table.n})`);
      }
      if (ids.length === 0) return;
      const h = handleOf(table, 'embedding');
      run('embedding', () => b.embedding(h, ids, out));
    },
    rope(x, p, positions, cos, sin) {
      const geom = ropeGeometry(x, p, positions, cos, sin);
      if (p.m === 0 || p.nHeads === 0) return;
      run('rope', () => b.rope(x, geom, positions, cos, sin));
    },
    attention(q, k, v, out, p) {
      const geom = attentionGeometry(q, k, v, out, p);
      if (p.tq === 0 || p.nHeads === 0) return;
      run('attention', () => b.attention(q, k, v, out, geom, p.scale));
    },
    moeRoute(logits, m, nExperts, p, idx, weight, scores) {
      const cfg = routeConfig(logits, m, nExperts, p, idx, weight, scores);
      if (m === 0) return;
      run('moeRoute', () => b.moeRoute(logits, m, nExperts, cfg, p.method === 'noaux_tc' ? p.bias : null, p.scalingFactor, idx, weight, scores));
    },
    moeExperts(x, m, h, experts: ExpertWeights[], idx, weight, topK, out) {
      const op = 'moeExperts';
      count(m, op, 'm');
      count(h, op, 'h');
      count(topK, op, 'topK');
      shape(x.length >= m * h && out.length >= m * h, op, 'x/out need m*h elements');
      shape(idx.length >= m * topK && weight.length >= m * topK, op, 'idx/weight need m*topK elements');
      for (let s = 0; s < m * topK; s++) {
        const e = idx[s]!;
        if (!(e >= 0 && e < experts.length)) throw new RangeError(`moeExperts: expert index ${e} outside [0, ${experts.length})`);
      }
      if (m === 0) return;
      const used = new Set<number>();
      for (let s = 0; s < m * topK; s++) used.add(idx[s]!);
      let ref: ExpertWeights | null = null;
      for (const e of used) {
        const ex = experts[e]!;
        ref ??= ex;
        shape(ex.gate.k === h && ex.up.k === h && ex.down.n === h && ex.gate.n === ex.up.n && ex.down.k === ex.gate.n, op, `expert ${e} does not map h=${h} -> inter -> h`);
        shape(ex.gate.n === ref.gate.n && ex.gate.format === ref.gate.format && ex.up.format === ref.gate.format && ex.down.format === ref.down.format, op, 'routed experts differ in format or size; the grouped launch needs them alike');
      }
      // Handles of the unused experts are never read by the device code; any routed expert's stand in.
      const any = ref!;
      const handles: unknown[] = [];
      for (let e = 0; e < experts.length; e++) {
        const ex = used.has(e) ? experts[e]! : any;
        handles.push(handleOf(ex.gate, op), handleOf(ex.up, op), handleOf(ex.down, op));
      }
      run(op, () => b.moeExperts(x, m, h, handles, idx, weight, topK, out));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// expert placement (`expertsOn`)

/** Where the routed experts of each MoE layer live. */
export interface ExpertPlacementOptions {
  /** 'gpu': all on the GPU; 'cpu': all in host memory (CPU kernels); 'auto': as many layers on the GPU as fit */
  expertsOn: 'gpu' | 'cpu' | 'auto';
  /** keep the routed experts of the first N MoE layers on the CPU (like llama.cpp's --n-cpu-moe); overrides 'gpu' for those layers */
  cpuExpertLayers?: number;
  /** number of decoder layers and which of them are MoE layers */
  layers: number;
  isMoeLayer: (layer: number) => boolean;
  /** bytes of the routed experts of one MoE layer, and of everything else (attention, dense, shared experts, embeddings, head) */
  expertBytesPerLayer: number;
  otherBytes: number;
  /** GPU memory available for weights, in bytes ('auto' only) and headroom kept for KV cache and workspaces */
  gpuBytes?: number;
  reserveBytes?: number;
}

/** The plan: per layer, where its routed experts run, and the bytes that go to the GPU. */
export interface ExpertPlacement {
  experts: Array<'gpu' | 'cpu' | null>;
  gpuBytes: number;
  cpuBytes: number;
  expertLayersOnCpu: number;
}

/**
 * Decide where each layer's routed experts live. Everything but the routed experts is on the GPU; with
 * 'auto' the first MoE layers move to the CPU until the rest fits in `gpuBytes - reserveBytes`.
 * Throws `E_OPTIONS` for inconsistent options and `E_BACKEND_UNAVAILABLE` when even the non-expert
 * weights do not fit.
 */
export function planExpertPlacement(o: ExpertPlacementOptions): ExpertPlacement {
  if (!['gpu', 'cpu', 'auto'].includes(o.expertsOn)) throw new KestrelError('E_OPTIONS', `expertsOn must be 'gpu', 'cpu' or 'auto', got ${String(o.expertsOn)}`);
  const moeLayers: number[] = [];
  for (let l = 0; l < o.layers; l++) if (o.isMoeLayer(l)) moeLayers.push(l);
  let nCpu: number;
  if (o.cpuExpertLayers !== undefined) {
    if (!Number.isInteger(o.cpuExpertLayers) || o.cpuExpertLayers < 0) throw new KestrelError('E_OPTIONS', `cpuExpertLayers must be a non-negative integer, got ${o.cpuExpertLayers}`);
    if (o.expertsOn === 'cpu') throw new KestrelError('E_OPTIONS', "cpuExpertLayers goes with expertsOn 'gpu' or 'auto', not 'cpu'");
  }
  if (o.expertsOn === 'cpu') {
    nCpu = moeLayers.length;
  } else if (o.expertsOn === 'gpu') {
    nCpu = Math.min(o.cpuExpertLayers ?? 0, moeLayers.length);
  } else {
    if (o.gpuBytes === undefined) throw new KestrelError('E_OPTIONS', "expertsOn 'auto' needs gpuBytes");
    const budget = o.gpuBytes - (o.reserveBytes ?? 0);
    if (o.otherBytes > budget) {
      throw new KestrelError('E_BACKEND_UNAVAILABLE', `the non-expert weights (${(o.otherBytes / 2 ** 30).toFixed(2)} GiB) do not fit in the GPU budget (${(budget / 2 ** 30).toFixed(2)} GiB)`);
    }
    const fit = o.expertBytesPerLayer > 0 ? Math.floor((budget - o.otherBytes) / o.expertBytesPerLayer) : moeLayers.length;
    nCpu = Math.max(moeLayers.length - Math.max(fit, 0), Math.min(o.cpuExpertLayers ?? 0, moeLayers.length));
  }
  const experts: Array<'gpu' | 'cpu' | null> = Array.from({ length: o.layers }, () => null);
  moeLayers.forEach((l, i) => (experts[l] = i < nCpu ? 'cpu' : 'gpu'));
  const onGpu = moeLayers.length - nCpu;
  return { experts, gpuBytes: o.otherBytes + onGpu * o.expertBytesPerLayer, cpuBytes: nCpu * o.expertBytesPerLayer, expertLayersOnCpu: nCpu };
}
