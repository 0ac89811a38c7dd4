/**
 * Host-side logic of the CUDA backend, without a GPU: the E_BACKEND_UNAVAILABLE paths (with their reasons),
 * the argument encoding and shape checks of the Kernels wrapper (through a stand-in binding that decodes
 * the C ABI's arguments and runs the portable ops), the fallback upload of unprepared weights and release
 * (the expert placement plan is tested in packages/moe/src/placement.test.ts). The device kernels themselves are checked by check-on-gpu.sh.
 */
import { describe, it, expect } from 'vitest';
import { existsSync } from 'node:fs';
import { isKestrelError } from '@kestrel/core';
import { portableKernels as P } from './portable/index.js';
import type { AttentionParams, LinearWeight, MoeRouteParams, PreparedLinear, RopeParams } from './contract.js';
import { createCudaKernels, cudaAvailability, loadCudaKernels } from './cuda.js';
import { CUDA_PATHS, loadCudaBinding, type CudaBinding } from './cuda-binding.js';
import { compareWithPortable } from './cuda-check.js';

type FakeHandle = { w: LinearWeight; released: boolean };
const FORMATS = ['f32', 'bf16', 'q8'] as const;

/** A binding that decodes the C ABI arguments (kestrel_cuda.h order) and runs the portable ops. */
function fakeBinding(): CudaBinding & { uploads: number; releases: number } {
  const live = (h: unknown): LinearWeight => {
    const f = h as FakeHandle;
    if (f.released) throw new Error('this weight was released');
    return f.w;
  };
  const fake = {
    uploads: 0,
    releases: 0,
    open() {},
    info: () => ({ name: 'fake GPU', ccMajor: 9, ccMinor: 0, totalMem: 2 ** 34, smCount: 132 }),
    prepareLinear(format: number, n: number, k: number, data: Float32Array | Uint16Array | Int8Array, scales: Float32Array | null) {
      fake.uploads++;
      const f = FORMATS[format]!;
      const w = (f === 'q8' ? { format: f, n, k, data, scales } : { format: f, n, k, data }) as LinearWeight;
      return { w, released: false } satisfies FakeHandle;
    },
    releaseLinear(h: unknown) {
      fake.releases++;
      (h as FakeHandle).released = true;
    },
    linear: (x: Float32Array, m: number, h: unknown, bias: Float32Array | null, out: Float32Array) => P.linear(x, m, live(h), bias, out),
    rmsnorm: P.rmsnorm,
    layernorm: P.layernorm,
    unary(op: number, x: Float32Array, out: Float32Array) {
      if (op === 2) P.silu(x, out);
      else P.gelu(x, out, op === 0 ? 'tanh' : 'erf');
    },
    binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array) {
      if (op === 0) P.add(a, b, out);
      else if (op === 1) P.mul(a, b, out);
      else P.swiglu(a, b, out);
    },
    softmax: P.softmax,
    embedding: (h: unknown, ids: Int32Array, out: Float32Array) => P.embedding(live(h), ids, out),
    rope(x: Float32Array, g: Int32Array, positions: Int32Array, cos: Float32Array, sin: Float32Array) {
      const p: RopeParams = { m: g[0]!, nHeads: g[1]!, headStride: g[2]!, rowStride: g[3]!, offset: g[4]!, dim: g[5]!, interleaved: g[6] === 1 };
      P.rope(x, p, positions, cos, sin);
    },
    attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, g: Int32Array, scale: number) {
      const p: AttentionParams = { tq: g[0]!, tk: g[1]!, nHeads: g[2]!, nKvHeads: g[3]!, dqk: g[4]!, dv: g[5]!, qStride: g[6]!, kStride: g[7]!, vStride: g[8]!, outStride: g[9]!, causal: g[10] === 1, qPos0: g[11]!, scale };
      P.attention(q, k, v, out, p);
    },
    moeRoute(logits: Float32Array, m: number, E: number, c: Int32Array, bias: Float32Array | null, scaling: number, idx: Int32Array, weight: Float32Array, scores: Float32Array) {
      const methods = ['greedy', 'group_limited_greedy', 'noaux_tc'] as const;
      const p: MoeRouteParams = { topK: c[0]!, scoring: c[1] === 0 ? 'softmax' : 'sigmoid', method: methods[c[2]!]!, nGroup: c[3]!, topkGroup: c[4]!, normTopkProb: c[5] === 1, bias, scalingFactor: scaling };
      P.moeRoute(logits, m, E, p, idx, weight, scores);
    },
    moeExperts(x: Float32Array, m: number, h: number, handles: unknown[], idx: Int32Array, weight: Float32Array, topK: number, out: Float32Array) {
      const experts = [];
      for (let e = 0; e < handles.length / 3; e++) experts.push({ gate: live(handles[3 * e]), up: live(handles[3 * e + 1]), down: live(handles[3 * e + 2]) });
      P.moeExperts(x, m, h, experts, idx, weight, topK, out);
    },
    copyBandwidth: () => 4000,
  };
  return fake;
}

const f32w = (n: number, k: number, seed = 1): LinearWeight => ({ format: 'f32', n, k, data: Float32Array.from({ length: n * k }, (_, i) => Math.sin(i * 0.37 + seed)) });

describe('cuda backend: availability', () => {
  it('missing build -> E_BACKEND_UNAVAILABLE naming the missing file and npm run build:cuda', () => {
    const e = (() => { try { loadCudaBinding({ shim: '/nonexistent/kestrel_cuda.node', lib: '/nonexistent/libkestrel_cuda.so' }); } catch (x) { return x; } return null; })();
    expect(isKestrelError(e, 'E_BACKEND_UNAVAILABLE')).toBe(true);
    expect((e as Error).message).toMatch(/not built.*libkestrel_cuda\.so.*npm run build:cuda/);
  });

  it('a shim that fails to load, or a library that finds no GPU, gives E_BACKEND_UNAVAILABLE with the reason', () => {
    const paths = { shim: import.meta.filename, lib: import.meta.filename }; // any existing files
    const e1 = (() => { try { loadCudaBinding(paths, () => { throw new Error('invalid ELF header'); }); } catch (x) { return x; } return null; })();
    expect(isKestrelError(e1, 'E_BACKEND_UNAVAILABLE')).toBe(true);
    expect((e1 as Error).message).toContain('invalid ELF header');
    const noGpu = { ...fakeBinding(), open() { throw new Error('no NVIDIA driver found (libcuda.so.1 cannot be loaded)'); } };
    const e2 = (() => { try { loadCudaBinding(paths, () => noGpu); } catch (x) { return x; } return null; })();
    expect(isKestrelError(e2, 'E_BACKEND_UNAVAILABLE')).toBe(true);
    expect((e2 as Error).message).toContain('libcuda.so.1');
  });

  it('on this machine: loadCudaKernels either works (GPU) or throws E_BACKEND_UNAVAILABLE with a reason, remembered', async () => {
    const a = await cudaAvailability();
    if (a.available) {
      expect(a.device.ccMajor).toBeGreaterThanOrEqual(8);
      return;
    }
    // Without a GPU (CI, these machines): the reason says what is missing: the build, or the driver/GPU.
    expect(a.reason).toMatch(existsSync(CUDA_PATHS.shim) && existsSync(CUDA_PATHS.lib) ? /driver|GPU|device/i : /not built/);
    const e = await loadCudaKernels().catch((x: unknown) => x);
    expect(isKestrelError(e, 'E_BACKEND_UNAVAILABLE')).toBe(true);
    expect((e as Error).message).toBe(a.reason);
  });
});

describe('cuda backend: host-side wrapper (stand-in binding)', () => {
  it('passes every op argument through the C ABI encoding (all checks match the portable ops exactly)', () => {
    const k = createCudaKernels(fakeBinding());
    const lines: string[] = [];
    const checks = compareWithPortable(k, (l) => lines.push(l));
    expect(checks.length).toBeGreaterThan(40);
    const bad = checks.filter((c) => c.err !== 0);
    expect(bad, lines.join('\n')).toEqual([]);
  });

  it('the comparison fails an op that leaves outputs unwritten (poisoned with NaN) or is off', () => {
    const fb = fakeBinding();
    const skipLast = { ...fb, silu: undefined, unary(op: number, x: Float32Array, out: Float32Array) { fb.unary(op, x.subarray(0, x.length - 1), out.subarray(0, out.length - 1)); } };
    const off = { ...fb, rmsnorm(x: Float32Array, m: number, n: number, w: Float32Array, eps: number, out: Float32Array) { P.rmsnorm(x, m, n, w, eps, out); out[5] = out[5]! + 1; } };
    const c1 = compareWithPortable(createCudaKernels(skipLast));
    expect(c1.find((c) => c.name === 'silu')!.pass).toBe(false);
    expect(c1.find((c) => c.name === 'silu')!.err).toBe(Infinity);
    const c2 = compareWithPortable(createCudaKernels(off));
    expect(c2.find((c) => c.name === 'rmsnorm')!.pass).toBe(false);
  });

  it('uploads a prepared weight once; an unprepared one once per data array (fallback); release makes later use throw', () => {
    const fb = fakeBinding();
    const k = createCudaKernels(fb);
    const w = k.prepareLinear(f32w(4, 8));
    expect(fb.uploads).toBe(1);
    const x = Float32Array.from({ length: 16 }, (_, i) => i / 7);
    const out = new Float32Array(8);
    k.linear(x, 2, w, null, out);
    k.linear(x, 2, w, null, out);
    expect(fb.uploads).toBe(1);
    const raw = f32w(4, 8, 2);
    k.linear(x, 2, raw, null, out);
    k.linear(x, 2, raw, null, out);
    expect(fb.uploads).toBe(2);
    const ref = new Float32Array(8);
    P.linear(x, 2, raw, null, ref);
    expect(out).toEqual(ref);
    k.releaseLinear(w);
    k.releaseLinear(w); // twice is harmless
    expect(fb.releases).toBe(1);
    expect(() => k.linear(x, 2, w, null, out)).toThrow(/released/);
  });

  it('rejects bad shapes before anything reaches the device', () => {
    const fb = fakeBinding();
    const k = createCudaKernels(fb);
    const w = k.prepareLinear(f32w(4, 8));
    expect(() => k.linear(new Float32Array(15), 2, w, null, new Float32Array(8))).toThrow(RangeError);
    expect(() => k.linear(new Float32Array(16), 2, w, null, new Float32Array(7))).toThrow(/out needs/);
    expect(() => k.linear(new Float32Array(16), 2, w, new Float32Array(3), new Float32Array(8))).toThrow(/bias/);
    expect(() => k.linear(new Float32Array(16), 1.5, w, null, new Float32Array(8))).toThrow(/int32/);
    expect(() => k.prepareLinear({ format: 'q8', n: 2, k: 40, data: new Int8Array(128), scales: new Float32Array(3) })).toThrow(/scales/);
    expect(() => k.prepareLinear({ format: 'bf16', n: 2, k: 4, data: new Float32Array(8) as unknown as Uint16Array })).toThrow(/Uint16Array/);
    expect(() => k.embedding(w, Int32Array.from([4]), new Float32Array(8))).toThrow(/token id 4/);
    const att: AttentionParams = { tq: 1, tk: 4, nHeads: 4, nKvHeads: 3, dqk: 8, dv: 8, qStride: 32, kStride: 24, vStride: 24, outStride: 32, scale: 1, causal: true, qPos0: 3 };
    expect(() => k.attention(new Float32Array(32), new Float32Array(96), new Float32Array(96), new Float32Array(32), att)).toThrow(/multiple of nKvHeads/);
    expect(() => k.attention(new Float32Array(32), new Float32Array(95), new Float32Array(96), new Float32Array(32), { ...att, nKvHeads: 1, kStride: 24 })).not.toThrow();
    expect(() => k.attention(new Float32Array(32), new Float32Array(71), new Float32Array(96), new Float32Array(32), { ...att, nKvHeads: 1, kStride: 24 })).toThrow(/k is shorter/);
    const rp: RopeParams = { m: 2, nHeads: 2, headStride: 8, rowStride: 16, offset: 0, dim: 8, interleaved: false };
    const tab = new Float32Array(4 * 4);
    expect(() => k.rope(new Float32Array(32), rp, Int32Array.from([0, 4]), tab, tab)).toThrow(/position 4 outside/);
    expect(() => k.rope(new Float32Array(31), rp, Int32Array.from([0, 3]), tab, tab)).toThrow(/x is shorter/);
    expect(() => k.rope(new Float32Array(32), { ...rp, dim: 7 }, Int32Array.from([0, 3]), tab, tab)).toThrow(/even/);
    const route: MoeRouteParams = { topK: 2, scoring: 'softmax', method: 'group_limited_greedy', nGroup: 3, topkGroup: 1, bias: null, normTopkProb: false, scalingFactor: 1 };
    expect(() => k.moeRoute(new Float32Array(8), 1, 8, route, new Int32Array(2), new Float32Array(2), new Float32Array(8))).toThrow(/multiple of nGroup/);
    expect(() => k.moeRoute(new Float32Array(8), 1, 8, { ...route, nGroup: 4, topK: 9 }, new Int32Array(9), new Float32Array(9), new Float32Array(8))).toThrow(/topK/);
    const ex = { gate: k.prepareLinear(f32w(6, 4)), up: k.prepareLinear(f32w(6, 4)), down: k.prepareLinear(f32w(4, 6)) };
    expect(() => k.moeExperts(new Float32Array(4), 1, 4, [ex], Int32Array.from([1]), Float32Array.from([1]), 1, new Float32Array(4))).toThrow(/expert index 1/);
    const odd = { ...ex, down: k.prepareLinear(f32w(5, 6)) };
    expect(() => k.moeExperts(new Float32Array(4), 1, 4, [odd], Int32Array.from([0]), Float32Array.from([1]), 1, new Float32Array(4))).toThrow(/h=4/);
    const bf = { gate: k.prepareLinear({ format: 'bf16', n: 6, k: 4, data: new Uint16Array(24) }), up: ex.up, down: ex.down };
    expect(() => k.moeExperts(new Float32Array(8), 2, 4, [ex, bf], Int32Array.from([0, 1]), Float32Array.from([1, 1]), 1, new Float32Array(8))).toThrow(/differ in format/);
  });

  it('moeExperts uploads only the routed experts of unprepared weights; a device failure becomes E_INTERNAL', () => {
    const fb = fakeBinding();
    const k = createCudaKernels(fb);
    const experts = Array.from({ length: 5 }, (_, e) => ({ gate: f32w(6, 4, e), up: f32w(6, 4, e + 10), down: f32w(4, 6, e + 20) }));
    const x = Float32Array.from([0.5, -1, 2, 0.25]);
    const out = new Float32Array(4), ref = new Float32Array(4);
    k.moeExperts(x, 1, 4, experts, Int32Array.from([3, 1]), Float32Array.from([0.7, 0.3]), 2, out);
    expect(fb.uploads).toBe(6);
    P.moeExperts(x, 1, 4, experts, Int32Array.from([3, 1]), Float32Array.from([0.7, 0.3]), 2, ref);
    expect(out).toEqual(ref);
    const failing = createCudaKernels({ ...fb, rmsnorm() { throw new Error('an illegal memory access was encountered'); } });
    const e = (() => { try { failing.rmsnorm(new Float32Array(4), 1, 4, new Float32Array(4), 1e-6, new Float32Array(4)); } catch (x2) { return x2; } return null; })();
    expect(isKestrelError(e, 'E_INTERNAL')).toBe(true);
    const oom = createCudaKernels({ ...fb, prepareLinear() { throw new Error('out of memory'); } });
    const e2 = (() => { try { oom.prepareLinear(f32w(2, 2)); } catch (x2) { return x2; } return null; })();
    expect(isKestrelError(e2, 'E_BACKEND_UNAVAILABLE')).toBe(true);
    expect((e2 as Error).message).toMatch(/expertsOn/);
  });

  it('prepared weights keep the contract fields (models read n/k/format)', () => {
    const k = createCudaKernels(fakeBinding());
    const p: PreparedLinear = k.prepareLinear(f32w(3, 5));
    expect([p.format, p.n, p.k]).toEqual(['f32', 3, 5]);
    expect(k.name).toBe('cuda');
    expect(k.device.name).toBe('fake GPU');
  });
});
