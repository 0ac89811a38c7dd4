/**
 * The portable TypeScript kernels: every op of the contract in plain TypeScript, float64
 * accumulation. They run everywhere and are the reference the native and CUDA backends are tested
 * against.
 */
import type { Kernels } from '../contract.js';
import { withOpChecks } from '../op-checks.js';
import { prepareLinear, linear, embedding, decodeRow } from './linear.js';
import { rmsnorm, layernorm, gelu, silu, swiglu, softmax, add, mul, erf } from './elementwise.js';
import { rope } from './rope.js';
import { attention } from './attention.js';
import { moeRoute, moeExperts } from './moe.js';

const unchecked: Kernels = {
  name: 'portable',
  prepareLinear, linear, rmsnorm, layernorm, gelu, silu, swiglu, softmax, add, mul,
  embedding, rope, attention, moeRoute, moeExperts,
};

/**
 * The portable backend. With KESTREL_CHECK_OPS=1 every op first runs the argument checks the CUDA backend
 * runs (op-checks.ts): the loops themselves trust their lengths, for speed, and would read past an array's end.
 */
export const portableKernels: Kernels = process.env.KESTREL_CHECK_OPS === '1' ? withOpChecks(unchecked) : unchecked;

export { decodeRow, erf };
export { quantizeQ8 } from './quantize.js';
