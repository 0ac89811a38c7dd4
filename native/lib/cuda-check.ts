/**
 * Op-by-op comparison of a backend with the portable reference kernels on random inputs: the check
 * native/cuda/check-on-gpu.sh runs on a GPU, and that the unit tests run against a stand-in binding.
 * Error measure per output: max |got - ref| / max |ref| (norm-wise relative error), except bf16 linear, which is
 * held per element: |got - ref| / Σ_c |x_c·w_c| against 2^-16, the precision of its hi + lo bf16 activation split
 * (docs/cuda.md, Kernels). A NaN or infinity in the output never passes. Outputs are poisoned with NaN before every run so an op that skips elements fails.
 */
import { portableKernels as P, decodeRow } from './portable/index.js';
import { rng, randn, randomWeight as weight } from './random-inputs.js';
import type { AttentionParams, ExpertWeights, Kernels, LinearWeight, MoeRouteParams, RopeParams } from './contract.js';

/** One compared op. */
export interface OpCheck {
  name: string;
  /** worst norm-wise relative error seen (Infinity for NaN/inf or mismatched indices) */
  err: number;
  tol: number;
  pass: boolean;
}

/** max |got - ref| / max |ref|; Infinity when got has a NaN/inf or the lengths differ. */
export function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (got.length !== ref.length) return Infinity;
  let d = 0, m = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, f = ref[i]!;
    if (!Number.isFinite(g)) return Infinity;
    d = Math.max(d, Math.abs(g - f));
    m = Math.max(m, Math.abs(f));
  }
  return m === 0 ? d : d / m;
}

/**
 * Per-element relative error: max_i |got_i - ref_i| / scale_i, with scale_i the sum of the magnitudes of the
 * products that make output i (the size float rounding error is proportional to); Infinity for NaN/inf.
 */
export function scaledErr(got: ArrayLike<number>, ref: ArrayLike<number>, scale: ArrayLike<number>): number {
  if (got.length !== ref.length || scale.length !== ref.length) return Infinity;
  let e = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    if (!Number.isFinite(g)) return Infinity;
    const d = Math.abs(g - ref[i]!);
    if (d > 0) e = Math.max(e, scale[i]! > 0 ? d / scale[i]! : Infinity);
  }
  return e;
}

/** Σ_c |x_c · w_c| (+ |bias|) per output of a linear. */
function absDot(x: Float32Array, m: number, w: LinearWeight, bias: Float32Array | null): Float64Array {
  const row = new Float32Array(w.k);
  const o = new Float64Array(m * w.n);
  for (let j = 0; j < w.n; j++) {
    decodeRow(w, j, row);
    for (let i = 0; i < m; i++) {
      let s = bias ? Math.abs(bias[j]!) : 0;
      for (let c = 0; c < w.k; c++) s += Math.abs(x[i * w.k + c]! * row[c]!);
      o[i * w.n + j] = s;
    }
  }
  return o;
}

const TOL = { f32: 1e-5, bf16: 1e-2, q8: 1e-2 } as const;
/** bf16 linear, per element (scaledErr): the hi + lo split keeps about 16 bits of each activation. */
const BF16_LINEAR_TOL = 2 ** -16;

/**
 * Run every op of `k` against the portable kernels. `log` receives one line per check.
 * Returns all checks; callers decide (every check must pass).
 */
export function compareWithPortable(k: Kernels, log: (line: string) => void = () => {}): OpCheck[] {
  const r = rng(20261129);
  const checks: OpCheck[] = [];
  const record = (name: string, err: number, tol: number): void => {
    const pass = err <= tol;
    checks.push({ name, err, tol, pass });
    log(`${pass ? 'PASS' : 'FAIL'} ${name}: rel err ${err.toExponential(2)} (tol ${tol})`);
  };
  // run both backends on fresh copies; the output of the tested one is poisoned first
  const both = (name: string, tol: number, size: number, f: (kk: Kernels, out: Float32Array) => void, init?: Float32Array, scale?: Float64Array): void => {
    const ref = init ? init.slice() : new Float32Array(size);
    f(P, ref);
    const got = init ? init.slice() : new Float32Array(size).fill(NaN);
    try {
      f(k, got);
    } catch (e) {
      log(`FAIL ${name}: threw ${(e as Error).message}`);
      checks.push({ name, err: Infinity, tol, pass: false });
      return;
    }
    record(name, scale ? scaledErr(got, ref, scale) : relErr(got, ref), tol);
  };

  // linear: decode rows (m <= 8), several row tiles, the tensor-core path (bf16, m > 16), odd k (scalar path)
  for (const fmt of ['f32', 'bf16', 'q8'] as const) {
    for (const [m, kk, n] of [[1, 64, 40], [3, 37, 19], [8, 128, 65], [9, 96, 33], [40, 160, 72], [70, 70, 130]] as const) {
      const raw = weight(r, n, kk, fmt);
      const w = k.prepareLinear(raw);
      const x = randn(r, m * kk);
      const bias = m % 2 ? randn(r, n) : null;
      const name = `linear ${fmt} m=${m} k=${kk} n=${n}${bias ? ' +bias' : ''}`;
      if (fmt === 'bf16') both(name, BF16_LINEAR_TOL, m * n, (b, out) => b.linear(x, m, w, bias, out), undefined, absDot(x, m, raw, bias));
      else both(name, TOL[fmt], m * n, (b, out) => b.linear(x, m, w, bias, out));
    }
  }

  // norms and element-wise ops
  {
    const m = 3, n = 300;
    const x = randn(r, m * n, 3), w = randn(r, n), bb = randn(r, n);
    both('rmsnorm', TOL.f32, m * n, (b, out) => b.rmsnorm(x, m, n, w, 1e-6, out));
    both('layernorm', TOL.f32, m * n, (b, out) => b.layernorm(x, m, n, w, bb, 1e-5, out));
    const a = randn(r, 1001, 3), c = randn(r, 1001, 3);
    both('gelu tanh', TOL.f32, a.length, (b, out) => b.gelu(a, out, 'tanh'));
    both('gelu erf', TOL.f32, a.length, (b, out) => b.gelu(a, out, 'erf'));
    both('silu', TOL.f32, a.length, (b, out) => b.silu(a, out));
    both('swiglu', TOL.f32, a.length, (b, out) => b.swiglu(a, c, out));
    both('add', TOL.f32, a.length, (b, out) => b.add(a, c, out));
    both('mul', TOL.f32, a.length, (b, out) => b.mul(a, c, out));
    both('softmax', TOL.f32, 0, (b, out) => b.softmax(out, 4, 250), randn(r, 1000, 4));
  }

  // embedding
  for (const fmt of ['f32', 'bf16', 'q8'] as const) {
    const t = k.prepareLinear(weight(r, 50, 72, fmt));
    const ids = Int32Array.from([0, 49, 7, 7, 23]);
    both(`embedding ${fmt}`, TOL.f32, ids.length * 72, (b, out) => b.embedding(t, ids, out));
  }

  // rope: rotate_half and DeepSeek's de-interleaved variant, on a strided view
  for (const interleaved of [false, true]) {
    const p: RopeParams = { m: 3, nHeads: 3, headStride: 24, rowStride: 80, offset: 8, dim: 16, interleaved };
    const maxPos = 40, half = p.dim / 2;
    const cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
    for (let pos = 0; pos < maxPos; pos++) for (let i = 0; i < half; i++) {
      const a = pos / 10000 ** ((2 * i) / p.dim);
      cos[pos * half + i] = Math.cos(a);
      sin[pos * half + i] = Math.sin(a);
    }
    const positions = Int32Array.from([5, 39, 0]);
    both(`rope ${interleaved ? 'interleaved' : 'rotate_half'}`, TOL.f32, 0, (b, out) => b.rope(out, p, positions, cos, sin), randn(r, 3 * 80));
  }

  // attention: decode with a cache, causal prefill, GQA, MLA-shaped (one shared kv head, dqk != dv), bidirectional ViT
  const attn = (name: string, p: AttentionParams): void => {
    const q = randn(r, p.tq * p.qStride), kk = randn(r, p.tk * p.kStride), v = randn(r, p.tk * p.vStride);
    // the strided gaps of out must keep their contents: same finite filler there, NaN where the op writes
    const init = new Float32Array(p.tq * p.outStride).fill(0.5);
    for (let i = 0; i < p.tq; i++) init.fill(NaN, i * p.outStride, i * p.outStride + p.nHeads * p.dv);
    both(`attention ${name}`, TOL.f32, 0, (b, out) => b.attention(q, kk, v, out, p), init);
  };
  attn('decode', { tq: 1, tk: 37, nHeads: 4, nKvHeads: 4, dqk: 32, dv: 32, qStride: 128, kStride: 128, vStride: 128, outStride: 128, scale: 1 / Math.sqrt(32), causal: true, qPos0: 36 });
  attn('prefill causal GQA', { tq: 6, tk: 6, nHeads: 4, nKvHeads: 2, dqk: 16, dv: 16, qStride: 64, kStride: 40, vStride: 36, outStride: 70, scale: 0.25, causal: true, qPos0: 0 });
  attn('MLA decode (latent cache)', { tq: 1, tk: 50, nHeads: 8, nKvHeads: 1, dqk: 72, dv: 64, qStride: 576, kStride: 72, vStride: 72, outStride: 512, scale: 0.1, causal: true, qPos0: 49 });
  attn('MLA prefill chunk', { tq: 3, tk: 10, nHeads: 2, nKvHeads: 1, dqk: 40, dv: 32, qStride: 80, kStride: 40, vStride: 40, outStride: 64, scale: 0.15, causal: true, qPos0: 7 });
  attn('bidirectional ViT', { tq: 20, tk: 20, nHeads: 3, nKvHeads: 3, dqk: 24, dv: 24, qStride: 72, kStride: 72, vStride: 72, outStride: 72, scale: 1 / Math.sqrt(24), causal: false, qPos0: 0 });

  // router: indices must match exactly, weights and scores within f32 tolerance
  const routes: Array<[string, MoeRouteParams]> = [
    ['softmax greedy', { topK: 6, scoring: 'softmax', method: 'greedy', nGroup: 1, topkGroup: 1, bias: null, normTopkProb: false, scalingFactor: 1 }],
    ['softmax group_limited_greedy', { topK: 6, scoring: 'softmax', method: 'group_limited_greedy', nGroup: 8, topkGroup: 3, bias: null, normTopkProb: false, scalingFactor: 16 }],
    ['sigmoid noaux_tc', { topK: 8, scoring: 'sigmoid', method: 'noaux_tc', nGroup: 8, topkGroup: 4, bias: randn(r, 64, 0.1), normTopkProb: true, scalingFactor: 2.5 }],
  ];
  for (const [name, p] of routes) {
    const m = 5, E = 64;
    const logits = randn(r, m * E, 2);
    const run = (b: Kernels) => {
      const idx = new Int32Array(m * p.topK).fill(-1), w = new Float32Array(m * p.topK).fill(NaN), s = new Float32Array(m * E).fill(NaN);
      b.moeRoute(logits, m, E, p, idx, w, s);
      return { idx, w, s };
    };
    const ref = run(P);
    let got: ReturnType<typeof run>;
    try {
      got = run(k);
    } catch (e) {
      log(`FAIL moeRoute ${name}: threw ${(e as Error).message}`);
      checks.push({ name: `moeRoute ${name}`, err: Infinity, tol: TOL.f32, pass: false });
      continue;
    }
    const same = got.idx.every((v, i) => v === ref.idx[i]);
    record(`moeRoute ${name}`, same ? Math.max(relErr(got.w, ref.w), relErr(got.s, ref.s)) : Infinity, TOL.f32);
  }

  // grouped experts: decode (1 token) and a prefill batch, per weight format
  for (const fmt of ['f32', 'bf16', 'q8'] as const) {
    const E = 6, h = 64, inter = 48, topK = 2;
    const raw = Array.from({ length: E }, () => ({ gate: weight(r, inter, h, fmt), up: weight(r, inter, h, fmt), down: weight(r, h, inter, fmt) }));
    const prepared: ExpertWeights[] = raw.map((e) => ({ gate: k.prepareLinear(e.gate), up: k.prepareLinear(e.up), down: k.prepareLinear(e.down) }));
    for (const m of [1, 11]) {
      const x = randn(r, m * h);
      const idx = new Int32Array(m * topK);
      for (let i = 0; i < m; i++) {
        idx[i * topK] = Math.floor(r() * E);
        idx[i * topK + 1] = (idx[i * topK]! + 1 + Math.floor(r() * (E - 1))) % E;
      }
      const wts = Float32Array.from({ length: m * topK }, () => r());
      both(`moeExperts ${fmt} m=${m}`, TOL[fmt], m * h, (b, out) => b.moeExperts(x, m, h, b === P ? raw : prepared, idx, wts, topK, out));
    }
  }
  return checks;
}
