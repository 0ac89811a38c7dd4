/**
 * Loader of the C++ addon (build/Release/kestrel_native.node) and its `Kernels` wrapper. The addon picks its
 * instruction set at run time (cpuid: avx512-vnni, avx512, avx2, scalar) and runs each op on the thread pool of
 * the calling JS thread's own engine; ops stay synchronous as the contract says (run model work in a worker thread to keep an event loop free).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KestrelError } from '@kestrel/core';
import type { Kernels, LinearWeight, PreparedLinear } from './contract.js';
import { withOpChecks } from './op-checks.js';

/**
 * The raw functions the binary exports (see src/addon.cc): the contract's ops with the same signatures,
 * plus pool/ISA control; weights are prepared into and released from opaque native handles.
 */
type NativeBinding = Omit<Kernels, 'name' | 'prepareLinear' | 'releaseLinear'> & {
  info(): { isa: string; threads: number; supportedIsas: string[] };
  setThreads(n: number): void;
  setIsa(name: string): boolean;
  probe(bufferMb?: number): { readGBps: number; f32Gflops: number; int8Gops: number };
  prepareLinear(w: LinearWeight): unknown;
  releaseLinear(handle: unknown): void;
};

/** State of the native CPU backend. */
export interface NativeInfo {
  /** instruction set in use */
  isa: string;
  /** threads of the pool (the calling thread included) */
  threads: number;
  /** instruction sets this CPU can run, best first */
  supportedIsas: string[];
}

const BINARY = fileURLToPath(new URL('../build/Release/kestrel_native.node', import.meta.url));

let binding: NativeBinding | null = null;
let kernels: NativeKernels | null = null;

function load(): NativeBinding {
  if (binding) return binding;
  if (!existsSync(BINARY)) {
    throw new KestrelError('E_BACKEND_UNAVAILABLE', `the native addon is not built (${BINARY} is missing); run \`npm run build:native\` (needs a C++ compiler and python3)`);
  }
  try {
    binding = createRequire(import.meta.url)(BINARY) as NativeBinding;
  } catch (e) {
    throw new KestrelError('E_BACKEND_UNAVAILABLE', `the native addon failed to load: ${(e as Error).message}; rebuild it with \`npm run build:native\``, { cause: e });
  }
  return binding;
}

/** The native kernels: the contract plus `releaseLinear`, which the model's dispose() calls when present. */
export type NativeKernels = Kernels & { releaseLinear(w: PreparedLinear): void };

function wrap(b: NativeBinding): NativeKernels {
  return {
    get name() {
      return `native-cpu (${b.info().isa})`;
    },
    prepareLinear(w: LinearWeight): PreparedLinear {
      // The handle holds the parsed view and keeps the arrays alive; its finalizer frees it.
      return { ...w, handle: b.prepareLinear(w) } as PreparedLinear;
    },
    releaseLinear(w: PreparedLinear): void {
      // Drops the handle's references now; using the weight afterwards throws instead of reading freed memory.
      if (w.handle !== undefined) b.releaseLinear(w.handle);
    },
    linear: (x, m, w, bias, out) => b.linear(x, m, w, bias, out),
    rmsnorm: (x, m, n, weight, eps, out) => b.rmsnorm(x, m, n, weight, eps, out),
    layernorm: (x, m, n, weight, bias, eps, out) => b.layernorm(x, m, n, weight, bias, eps, out),
    gelu: (x, out, approx) => b.gelu(x, out, approx),
    silu: (x, out) => b.silu(x, out),
    swiglu: (g, u, out) => b.swiglu(g, u, out),
    softmax: (x, m, n) => b.softmax(x, m, n),
    add: (a, c, out) => b.add(a, c, out),
    mul: (a, c, out) => b.mul(a, c, out),
    embedding: (table, ids, out) => b.embedding(table, ids, out),
    rope: (x, p, positions, cos, sin) => b.rope(x, p, positions, cos, sin),
    attention: (q, k, v, out, p) => b.attention(q, k, v, out, p),
    moeRoute: (logits, m, e, p, idx, weight, scores) => b.moeRoute(logits, m, e, p, idx, weight, scores),
    moeExperts: (x, m, h, experts, idx, weight, topK, out) => b.moeExperts(x, m, h, experts, idx, weight, topK, out),
  };
}

/**
 * The native CPU kernels. `threads` resizes this context's pool: each JS thread (the main thread and every
 * worker_thread) that loads the addon has its own engine (pool, ISA, scratch), so workers compute in parallel;
 * size them together (workers × threads ≤ cores). Default: one thread per core, or `KESTREL_THREADS`. Throws `E_BACKEND_UNAVAILABLE` when the binary is missing or does not load.
 */
export function loadNativeKernels(options: { threads?: number } = {}): NativeKernels {
  const b = load();
  if (options.threads !== undefined) {
    if (!Number.isInteger(options.threads) || options.threads < 1) {
      throw new KestrelError('E_OPTIONS', `threads must be a positive integer, got ${String(options.threads)}`);
    }
    b.setThreads(options.threads);
  }
  // KESTREL_CHECK_OPS=1: the shared TypeScript checks run first too (op-checks.ts), as for every backend
  kernels ??= process.env.KESTREL_CHECK_OPS === '1' ? (withOpChecks(wrap(b)) as NativeKernels) : wrap(b);
  return kernels;
}

/** Instruction set, thread count and supported instruction sets of the loaded addon. */
export function nativeInfo(): NativeInfo {
  return load().info();
}

/** Read bandwidth and f32 / int8 peaks as this JS thread's engine sees them (see probe.ts). */
export function nativeProbe(bufferMb?: number): { readGBps: number; f32Gflops: number; int8Gops: number } {
  return load().probe(bufferMb);
}

/**
 * Force an instruction set (tests, benchmarks): one of `nativeInfo().supportedIsas`. Returns false (and changes
 * nothing) when this CPU cannot run it. `KESTREL_ISA` does the same at start-up.
 */
export function setNativeIsa(isa: string): boolean {
  return load().setIsa(isa);
}
