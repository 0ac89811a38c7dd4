/**
 * Deterministic random inputs for comparing kernels op by op (the unit tests and the GPU check share
 * them, so a failure seen in one reproduces in the other).
 */
import { quantizeQ8 } from './portable/index.js';
import type { LinearWeight } from './contract.js';

/** LCG in [0, 1): tiny, seeded, the same on every platform. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** n normal samples (Box-Muller) times `scale`. */
export function randn(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * scale;
  return a;
}

/** f32 -> bf16 by truncation: any bf16 pattern is a valid weight, and this keeps inputs exact. */
export function toBf16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
  const o = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) o[i] = u[i]! >>> 16;
  return o;
}

/** A random weight W [n, k] ~ N(0, 1/k) in the given storage format. */
export function randomWeight(r: () => number, n: number, k: number, format: 'f32' | 'bf16' | 'q8'): LinearWeight {
  const data = randn(r, n * k, 1 / Math.sqrt(k));
  const f: LinearWeight = { format: 'f32', n, k, data };
  if (format === 'f32') return f;
  if (format === 'bf16') return { format: 'bf16', n, k, data: toBf16(data) };
  return quantizeQ8(f);
}
