/**
 * The portable TypeScript kernels: every op of the contract in plain TypeScript, float64
 * accumulation. They run everywhere and are the reference the native and CUDA backends are tested
 * against.
 */
import type { Kernels } from '../contract.js';
import { prepareLinear, linear, embedding, decodeRow } from './linear.js';
import { rmsnorm, layernorm, gelu, silu, swiglu, softmax, add, mul, erf } from './elementwise.js';
import { rope } from './rope.js';
import { attention } from './attention.js';
import { moeRoute, moeExperts } from './moe.js';

/** The portable backend. */
export const portableKernels: Kernels = {
  name: 'portable',
  prepareLinear, linear, rmsnorm, layernorm, gelu, silu, swiglu, softmax, add, mul,
  embedding, rope, attention, moeRoute, moeExperts,
};

export { decodeRow, erf };
export { quantizeQ8 } from './quantize.js';
