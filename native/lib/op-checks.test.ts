/**
 * The shared op argument checks: the portable kernels behind withOpChecks reject what the CUDA wrapper rejects
 * (the portable loops alone read past the end and return NaN), valid calls compute exactly as unchecked, and
 * KESTREL_CHECK_OPS=1 turns the checks on for the exported portable backend.
 */
import { describe, it, expect, vi, afterEach } from 'vitest';
import { portableKernels as P } from './portable/index.js';
import { withOpChecks } from './op-checks.js';
import type { LinearWeight } from './contract.js';

const C = withOpChecks(P);
const w23: LinearWeight = { format: 'f32', n: 2, k: 3, data: Float32Array.from([1, 2, 3, 4, 5, 6]) };

describe('withOpChecks', () => {
  it('a short x is a RangeError naming the op, where the unchecked loop returns NaN', () => {
    const out = new Float32Array(4);
    P.linear(new Float32Array(5), 2, w23, null, out); // row 1 reads x[5], past the end
    expect(Number.isNaN(out[2]!)).toBe(true);
    expect(() => C.linear(new Float32Array(5), 2, w23, null, new Float32Array(4))).toThrow(/^linear: x needs m\*k = 6 elements, has 5$/);
  });

  it('rejects the bad calls the CUDA wrapper rejects, op by op', () => {
    const bad: Array<[() => void, RegExp]> = [
      [() => C.linear(new Float32Array(6), 1.5, w23, null, new Float32Array(4)), /linear: m must be a non-negative int32/],
      [() => C.linear(new Float32Array(6), 2, w23, new Float32Array(1), new Float32Array(4)), /linear: bias is shorter/],
      [() => C.prepareLinear({ format: 'q8', n: 2, k: 40, data: new Int8Array(128), scales: new Float32Array(3) }), /prepareLinear: q8 scales/],
      [() => C.rmsnorm(new Float32Array(7), 2, 4, new Float32Array(4), 1e-6, new Float32Array(8)), /rmsnorm: x\/out need m\*n/],
      [() => C.layernorm(new Float32Array(8), 2, 4, new Float32Array(4), new Float32Array(3), 1e-6, new Float32Array(8)), /layernorm: .*bias/],
      [() => C.gelu(new Float32Array(4), new Float32Array(3), 'tanh'), /gelu: operands are shorter/],
      [() => C.gelu(new Float32Array(4), new Float32Array(4), 'exact' as 'tanh'), /gelu: approx/],
      [() => C.swiglu(new Float32Array(4), new Float32Array(3), new Float32Array(4)), /swiglu/],
      [() => C.add(new Float32Array(4), new Float32Array(4), new Float32Array(2)), /add/],
      [() => C.softmax(new Float32Array(5), 2, 3), /softmax: x needs m\*n/],
      [() => C.embedding(w23, Int32Array.from([2]), new Float32Array(3)), /embedding: token id 2 outside \[0, 2\)/],
      [() => C.rope(new Float32Array(8), { m: 2, nHeads: 1, headStride: 4, rowStride: 4, offset: 0, dim: 4, interleaved: false }, Int32Array.from([0, 3]), new Float32Array(6), new Float32Array(6)), /rope: position 3 outside the table \[0, 3\)/],
      [() => C.attention(new Float32Array(8), new Float32Array(8), new Float32Array(8), new Float32Array(8), { tq: 1, tk: 1, nHeads: 3, nKvHeads: 2, dqk: 2, dv: 2, qStride: 6, kStride: 4, vStride: 4, outStride: 6, scale: 1, causal: true, qPos0: 0 }), /attention: nHeads 3 must be a multiple of nKvHeads 2/],
      [() => C.moeRoute(new Float32Array(8), 1, 8, { topK: 9, scoring: 'softmax', method: 'greedy', nGroup: 1, topkGroup: 1, bias: null, normTopkProb: false, scalingFactor: 1 }, new Int32Array(9), new Float32Array(9), new Float32Array(8)), /moeRoute: topK/],
      [() => C.moeExperts(new Float32Array(3), 1, 3, [{ gate: w23, up: w23, down: { ...w23, n: 3, k: 2 } }], Int32Array.from([1]), Float32Array.from([1]), 1, new Float32Array(3)), /moeExperts: expert index 1 outside \[0, 1\)/],
    ];
    for (const [call, msg] of bad) expect(call).toThrow(msg);
  });

  it('valid calls compute exactly what the unchecked kernels compute', () => {
    const x = Float32Array.from([1, 0, -1, 2, 1, 0]);
    const a = new Float32Array(4), b = new Float32Array(4);
    P.linear(x, 2, w23, Float32Array.from([0.5, -0.5]), a);
    C.linear(x, 2, w23, Float32Array.from([0.5, -0.5]), b);
    // hand-computed: [1-3, 4-6] + bias, [2+2, 8+5] + bias
    expect(Array.from(b)).toEqual([-1.5, -2.5, 4.5, 12.5]);
    expect(b).toEqual(a);
  });
});

describe('KESTREL_CHECK_OPS', () => {
  afterEach(() => { vi.unstubAllEnvs(); vi.resetModules(); });

  it('=1 makes the exported portable backend check its arguments; unset it does not', async () => {
    vi.stubEnv('KESTREL_CHECK_OPS', '1');
    vi.resetModules();
    const checked = (await import('./portable/index.js')).portableKernels;
    expect(() => checked.softmax(new Float32Array(5), 2, 3)).toThrow(RangeError);
    vi.stubEnv('KESTREL_CHECK_OPS', '');
    vi.resetModules();
    const plain = (await import('./portable/index.js')).portableKernels;
    expect(() => plain.softmax(new Float32Array(5), 2, 3)).not.toThrow(); // unchecked: reads past the end
  });

  it('=1 puts the same checks in front of the native addon (when it is built)', async () => {
    vi.stubEnv('KESTREL_CHECK_OPS', '1');
    vi.resetModules();
    const addon = await import('./addon.js');
    let k;
    try { k = addon.loadNativeKernels(); } catch (e) {
      console.warn(`op-checks.test: native addon not loaded, its checked form not tested (${(e as Error).message})`);
      return;
    }
    // the message is op-checks.ts's, so the TypeScript check ran before the C++ one
    expect(() => k.linear(new Float32Array(5), 2, k.prepareLinear(w23), null, new Float32Array(4))).toThrow(/^linear: x needs m\*k = 6 elements, has 5$/);
  });
});
