/**
 * The CUDA backend of the kernel contract: the host `Kernels` wrapper over the C ABI (cuda-binding.ts).
 * native/cuda/build/kestrel_cuda.node (a thin N-API shim) is loaded at run time only; it dlopen()s
 * libkestrel_cuda.so, which finds the NVIDIA driver at run time. Without the build, a driver or a GPU,
 * {@link loadCudaKernels} throws `E_BACKEND_UNAVAILABLE` saying which.
 *
 * Every argument is checked by op-checks.ts before it reaches C; weights that were not prepared on the
 * device are uploaded once and cached.
 */
import { KestrelError } from '@kestrel/core';
import { createDeviceOps, type DeviceOps } from './cuda-device.js';
import type { ExpertWeights, Kernels, LinearWeight, PreparedLinear } from './contract.js';
import { BINARY, FORMAT, UNARY, attentionGeometry, loadCudaBinding, ropeGeometry, routeConfig, runOp, type CudaBinding, type CudaDeviceInfo } from './cuda-binding.js';
import { checkElementwise, checkEmbedding, checkGeluApprox, checkLinear, checkMoeExperts, checkNorm, checkSoftmax, checkWeight, shape } from './op-checks.js';

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
      checkLinear(x, m, w, bias, out);
      if (m === 0) return;
      const h = handleOf(w, 'linear');
      run('linear', () => b.linear(x, m, h, bias, out));
    },
    rmsnorm(x, m, n, weight, eps, out) {
      checkNorm('rmsnorm', x, m, n, weight, null, out);
      run('rmsnorm', () => b.rmsnorm(x, m, n, weight, eps, out));
    },
    layernorm(x, m, n, weight, bias, eps, out) {
      checkNorm('layernorm', x, m, n, weight, bias, out);
      run('layernorm', () => b.layernorm(x, m, n, weight, bias, eps, out));
    },
    gelu(x, out, approx) {
      checkElementwise('gelu', x, out);
      checkGeluApprox(approx);
      run('gelu', () => b.unary(approx === 'tanh' ? UNARY.gelu_tanh : UNARY.gelu_erf, x, out));
    },
    silu(x, out) {
      checkElementwise('silu', x, out);
      run('silu', () => b.unary(UNARY.silu, x, out));
    },
    swiglu(gate, up, out) {
      checkElementwise('swiglu', gate, up, out);
      run('swiglu', () => b.binary(BINARY.swiglu, gate, up, out));
    },
    softmax(x, m, n) {
      checkSoftmax(x, m, n);
      run('softmax', () => b.softmax(x, m, n));
    },
    add(a, c, out) {
      checkElementwise('add', a, c, out);
      run('add', () => b.binary(BINARY.add, a, c, out));
    },
    mul(a, c, out) {
      checkElementwise('mul', a, c, out);
      run('mul', () => b.binary(BINARY.mul, a, c, out));
    },
    embedding(table, ids, out) {
      checkEmbedding(table, ids, out);
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
      const used = checkMoeExperts(x, m, h, experts, idx, weight, topK, out);
      if (m === 0) return;
      let ref: ExpertWeights | null = null;
      for (const e of used) {
        const ex = experts[e]!;
        ref ??= ex;
        // the grouped launch reads all experts with one layout
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
