import { describe, it, expect } from 'vitest';
import { f32ToBf16, bf16ToF32 } from '@kestrel/core';
import { portableKernels as K, quantizeQ8, erf } from './index.js';
import type { LinearWeight, MoeRouteParams } from '../contract.js';
import { rng, randn } from '../random-inputs.js';

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
function naiveLinear(x: Float32Array, m: number, w: Float64Array, n: number, k: number, bias: Float32Array | null): Float64Array {
  const o = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = bias ? bias[j]! : 0;
    for (let c = 0; c < k; c++) s += x[i * k + c]! * w[j * k + c]!;
    o[i * n + j] = s;
  }
  return o;
}

describe('portable kernels vs naive float64', () => {
  const shapes: Array<[number, number, number]> = [[1, 1, 1], [1, 37, 5], [7, 33, 13], [13, 64, 31], [3, 95, 17]];

  it('linear f32 / bf16 / q8 on odd shapes', () => {
    const r = rng(1);
    for (const [m, k, n] of shapes) {
      const x = randn(r, m * k);
      const wf = randn(r, n * k, 0.5);
      const bias = randn(r, n);
      const out = new Float32Array(m * n);
      K.linear(x, m, K.prepareLinear({ format: 'f32', n, k, data: wf }), bias, out);
      expect(maxDiff(out, naiveLinear(x, m, Float64Array.from(wf), n, k, bias))).toBeLessThan(1e-5);
      // bf16: reference on the decoded bf16 values
      const wb = f32ToBf16(wf);
      K.linear(x, m, K.prepareLinear({ format: 'bf16', n, k, data: wb }), null, out);
      expect(maxDiff(out, naiveLinear(x, m, Float64Array.from(bf16ToF32(wb)), n, k, null))).toBeLessThan(1e-5);
      // q8: reference on the dequantized values; and the quantization error itself is small
      const q = quantizeQ8({ format: 'f32', n, k, data: wf });
      expect(q.data.length).toBe(n * Math.ceil(k / 32) * 32);
      const kp = Math.ceil(k / 32) * 32;
      const deq = new Float64Array(n * k);
      for (let j = 0; j < n; j++) for (let c = 0; c < k; c++) deq[j * k + c] = q.data[j * kp + c]! * q.scales[(j * kp + c) >> 5]!;
      expect(maxDiff(deq, wf)).toBeLessThan(0.5 * 4 / 127 + 1e-6);
      K.linear(x, m, K.prepareLinear(q), bias, out);
      expect(maxDiff(out, naiveLinear(x, m, deq, n, k, bias))).toBeLessThan(1e-5);
    }
  });

  it('embedding decodes any format', () => {
    const r = rng(2);
    const n = 11, k = 19;
    const t = randn(r, n * k);
    const ids = Int32Array.from([0, 10, 3, 3]);
    const out = new Float32Array(ids.length * k);
    K.embedding({ format: 'f32', n, k, data: t }, ids, out);
    for (let i = 0; i < ids.length; i++) for (let c = 0; c < k; c++) expect(out[i * k + c]).toBe(t[ids[i]! * k + c]);
    const wb: LinearWeight = { format: 'bf16', n, k, data: f32ToBf16(t) };
    K.embedding(wb, ids, out);
    const dec = bf16ToF32((wb as { data: Uint16Array }).data);
    for (let i = 0; i < ids.length; i++) for (let c = 0; c < k; c++) expect(out[i * k + c]).toBe(dec[ids[i]! * k + c]);
    expect(() => K.embedding(wb, Int32Array.from([n]), new Float32Array(k))).toThrow();
  });

  it('rmsnorm, layernorm, softmax, activations', () => {
    const r = rng(3);
    for (const [m, n] of [[1, 1], [5, 33], [3, 80]] as const) {
      const x = randn(r, m * n, 2);
      const w = randn(r, n);
      const b = randn(r, n);
      const out = new Float32Array(m * n);
      K.rmsnorm(x, m, n, w, 1e-6, out);
      const ref = new Float64Array(m * n);
      for (let i = 0; i < m; i++) {
        let ss = 0;
        for (let c = 0; c < n; c++) ss += x[i * n + c]! ** 2;
        for (let c = 0; c < n; c++) ref[i * n + c] = w[c]! * x[i * n + c]! / Math.sqrt(ss / n + 1e-6);
      }
      expect(maxDiff(out, ref)).toBeLessThan(1e-5);
      K.layernorm(x, m, n, w, b, 1e-6, out);
      for (let i = 0; i < m; i++) {
        let mu = 0;
        for (let c = 0; c < n; c++) mu += x[i * n + c]! / n;
        let v = 0;
        for (let c = 0; c < n; c++) v += (x[i * n + c]! - mu) ** 2 / n;
        for (let c = 0; c < n; c++) ref[i * n + c] = (x[i * n + c]! - mu) / Math.sqrt(v + 1e-6) * w[c]! + b[c]!;
      }
      expect(maxDiff(out, ref)).toBeLessThan(1e-5);
      const s = x.slice();
      K.softmax(s, m, n);
      for (let i = 0; i < m; i++) {
        let z = 0;
        for (let c = 0; c < n; c++) z += Math.exp(x[i * n + c]!);
        for (let c = 0; c < n; c++) ref[i * n + c] = Math.exp(x[i * n + c]!) / z;
      }
      expect(maxDiff(s, ref)).toBeLessThan(1e-7);
      const y = randn(r, m * n);
      K.silu(x, out);
      expect(maxDiff(out, Array.from(x, (v) => v / (1 + Math.exp(-v))))).toBeLessThan(1e-6);
      K.swiglu(x, y, out);
      expect(maxDiff(out, Array.from(x, (v, i) => v / (1 + Math.exp(-v)) * y[i]!))).toBeLessThan(1e-6);
      K.gelu(x, out, 'tanh');
      expect(maxDiff(out, Array.from(x, (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))))).toBeLessThan(1e-6);
      K.add(x, y, out);
      expect(maxDiff(out, Array.from(x, (v, i) => v + y[i]!))).toBeLessThan(1e-6);
      K.mul(x, y, out);
      expect(maxDiff(out, Array.from(x, (v, i) => v * y[i]!))).toBeLessThan(1e-6);
    }
  });

  it('erf matches known values and gelu(erf) is consistent', () => {
    // erf values from tables (erf(1), erf(2), erf(3.5), erf(0.1); erf(0.5/sqrt 2) = 0.38292492254802624)
    expect(erf(0)).toBe(0);
    expect(Math.abs(erf(1) - 0.8427007929497149)).toBeLessThan(1e-15);
    expect(Math.abs(erf(-2) + 0.9953222650189527)).toBeLessThan(1e-15);
    expect(Math.abs(erf(3.5) - 0.9999992569016276)).toBeLessThan(1e-15);
    expect(Math.abs(erf(0.1) - 0.1124629160182849)).toBeLessThan(1e-15);
    // continuity at the series / continued-fraction switch
    expect(Math.abs(erf(2.9999999) - erf(3.0000001))).toBeLessThan(1e-9);
    const x = Float32Array.from([-5, -1, 0, 0.5, 3, 7]);
    const out = new Float32Array(x.length);
    K.gelu(x, out, 'erf');
    expect(out[2]).toBe(0);
    expect(Math.abs(out[3]! - 0.5 * 0.5 * (1 + 0.3829249225480262))).toBeLessThan(1e-7);
    expect(Math.abs(out[5]! - 7)).toBeLessThan(1e-6);
  });

  it('rope: rotate_half and de-interleaved (MLA) variants', () => {
    const r = rng(4);
    const m = 5, nHeads = 3, headDim = 14, offset = 4, dim = 10, rowStride = nHeads * headDim + 2;
    const half = dim / 2;
    const maxPos = 40;
    const cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
    for (let p = 0; p < maxPos; p++) for (let i = 0; i < half; i++) {
      const a = p * 10000 ** (-2 * i / dim);
      cos[p * half + i] = Math.cos(a); sin[p * half + i] = Math.sin(a);
    }
    const positions = Int32Array.from([0, 3, 7, 39, 12]);
    for (const interleaved of [false, true]) {
      const x = randn(r, m * rowStride);
      const y = x.slice();
      K.rope(y, { m, nHeads, headStride: headDim, rowStride, offset, dim, interleaved }, positions, cos, sin);
      for (let row = 0; row < m; row++) for (let h = 0; h < nHeads; h++) {
        const o = row * rowStride + h * headDim + offset;
        const t = Array.from({ length: dim }, (_, i) => x[o + i]!);
        const u = interleaved ? [...t.filter((_, i) => i % 2 === 0), ...t.filter((_, i) => i % 2 === 1)] : t;
        for (let i = 0; i < dim; i++) {
          const f = (i % half);
          const ang = positions[row]! * 10000 ** (-2 * f / dim);
          const rot = i < half ? -u[i + half]! : u[i - half]!;
          expect(Math.abs(y[o + i]! - (u[i]! * Math.cos(ang) + rot * Math.sin(ang)))).toBeLessThan(1e-5);
        }
        // channels outside the rotated span are untouched
        for (let i = 0; i < offset; i++) expect(y[row * rowStride + h * headDim + i]).toBe(x[row * rowStride + h * headDim + i]);
      }
    }
  });

  it('attention: causal with cache offset, GQA, strides, bidirectional', () => {
    const r = rng(5);
    const cases = [
      { tq: 1, tk: 1, nHeads: 1, nKvHeads: 1, dqk: 3, dv: 5, causal: true, qPos0: 0 },
      { tq: 4, tk: 9, nHeads: 6, nKvHeads: 2, dqk: 7, dv: 5, causal: true, qPos0: 5 },
      { tq: 3, tk: 11, nHeads: 4, nKvHeads: 1, dqk: 9, dv: 6, causal: true, qPos0: 8 },
      { tq: 7, tk: 7, nHeads: 3, nKvHeads: 3, dqk: 5, dv: 5, causal: false, qPos0: 0 },
    ];
    for (const c of cases) {
      const qStride = c.nHeads * c.dqk + 1, kStride = c.nKvHeads * c.dqk + 3, vStride = c.nKvHeads * c.dv + 2, outStride = c.nHeads * c.dv + 1;
      const q = randn(r, c.tq * qStride), k = randn(r, c.tk * kStride), v = randn(r, c.tk * vStride);
      const out = new Float32Array(c.tq * outStride);
      const scale = 1 / Math.sqrt(c.dqk);
      K.attention(q, k, v, out, { ...c, qStride, kStride, vStride, outStride, scale });
      for (let i = 0; i < c.tq; i++) for (let h = 0; h < c.nHeads; h++) {
        const g = Math.floor(h / (c.nHeads / c.nKvHeads));
        const vis = c.causal ? c.qPos0 + i + 1 : c.tk;
        const s: number[] = [];
        for (let j = 0; j < vis; j++) {
          let d = 0;
          for (let e = 0; e < c.dqk; e++) d += q[i * qStride + h * c.dqk + e]! * k[j * kStride + g * c.dqk + e]!;
          s.push(Math.exp(d * scale));
        }
        const z = s.reduce((a, b) => a + b, 0);
        for (let e = 0; e < c.dv; e++) {
          let o = 0;
          for (let j = 0; j < vis; j++) o += s[j]! / z * v[j * vStride + g * c.dv + e]!;
          expect(Math.abs(out[i * outStride + h * c.dv + e]! - o)).toBeLessThan(1e-5);
        }
      }
    }
  });

  it('moeRoute: greedy, group_limited_greedy, noaux_tc', () => {
    const r = rng(6);
    const m = 9, E = 16;
    const logits = randn(r, m * E, 1.5);
    const bias = Float32Array.from({ length: E }, () => r() * 0.1);
    const ps: MoeRouteParams[] = [
      { topK: 3, scoring: 'softmax', method: 'greedy', nGroup: 1, topkGroup: 1, bias: null, normTopkProb: false, scalingFactor: 1.5 },
      { topK: 2, scoring: 'softmax', method: 'group_limited_greedy', nGroup: 4, topkGroup: 2, bias: null, normTopkProb: true, scalingFactor: 1 },
      { topK: 4, scoring: 'sigmoid', method: 'noaux_tc', nGroup: 4, topkGroup: 2, bias, normTopkProb: true, scalingFactor: 2.5 },
      { topK: 1, scoring: 'sigmoid', method: 'greedy', nGroup: 1, topkGroup: 1, bias: null, normTopkProb: true, scalingFactor: 1 },
    ];
    for (const p of ps) {
      const idx = new Int32Array(m * p.topK), w = new Float32Array(m * p.topK), sc = new Float32Array(m * E);
      K.moeRoute(logits, m, E, p, idx, w, sc);
      for (let i = 0; i < m; i++) {
        const l = Array.from(logits.subarray(i * E, i * E + E));
        let s: number[];
        if (p.scoring === 'softmax') { const z = l.reduce((a, b) => a + Math.exp(b), 0); s = l.map((v) => Math.exp(v) / z); } else s = l.map((v) => 1 / (1 + Math.exp(-v)));
        for (let e = 0; e < E; e++) expect(Math.abs(sc[i * E + e]! - s[e]!)).toBeLessThan(1e-7);
        let sel = p.method === 'noaux_tc' ? s.map((v, e) => v + bias[e]!) : [...s];
        if (p.method !== 'greedy') {
          const G = E / p.nGroup;
          const gs = Array.from({ length: p.nGroup }, (_, g) => {
            const part = sel.slice(g * G, g * G + G).sort((a, b) => b - a);
            return p.method === 'noaux_tc' ? part[0]! + part[1]! : part[0]!;
          });
          const keep = gs.map((v, g) => [v, g] as const).sort((a, b) => b[0] - a[0]).slice(0, p.topkGroup).map((x) => x[1]);
          sel = sel.map((v, e) => (keep.includes(Math.floor(e / G)) ? v : 0));
        }
        const order = sel.map((v, e) => [v, e] as const).sort((a, b) => b[0] - a[0]).slice(0, p.topK).map((x) => x[1]);
        expect(Array.from(idx.subarray(i * p.topK, (i + 1) * p.topK))).toEqual(order);
        let ws = order.map((e) => s[e]!);
        const tot = ws.reduce((a, b) => a + b, 0);
        ws = ws.map((v) => (p.topK > 1 && p.normTopkProb ? v / tot : v) * p.scalingFactor);
        for (let j = 0; j < p.topK; j++) expect(Math.abs(w[i * p.topK + j]! - ws[j]!)).toBeLessThan(1e-6);
      }
    }
  });

  it('moeExperts equals the per-token weighted sum of expert MLPs', () => {
    const r = rng(7);
    const m = 6, h = 13, inter = 9, E = 5, K2 = 2;
    const mk = (n: number, k: number): LinearWeight => ({ format: 'f32', n, k, data: randn(r, n * k, 0.4) });
    const experts = Array.from({ length: E }, () => ({ gate: mk(inter, h), up: mk(inter, h), down: mk(h, inter) }));
    const x = randn(r, m * h);
    const idx = Int32Array.from([0, 3, 4, 3, 1, 0, 2, 4, 3, 1, 0, 4]);
    const w = Float32Array.from({ length: m * K2 }, () => r());
    const out = new Float32Array(m * h);
    K.moeExperts(x, m, h, experts, idx, w, K2, out);
    for (let i = 0; i < m; i++) {
      const ref = new Float64Array(h);
      for (let j = 0; j < K2; j++) {
        const ex = experts[idx[i * K2 + j]!]!;
        const xi = x.subarray(i * h, i * h + h);
        const g = naiveLinear(xi, 1, Float64Array.from((ex.gate as { data: Float32Array }).data), inter, h, null);
        const u = naiveLinear(xi, 1, Float64Array.from((ex.up as { data: Float32Array }).data), inter, h, null);
        const a = Float32Array.from(g, (v, c) => v / (1 + Math.exp(-v)) * u[c]!);
        const y = naiveLinear(a, 1, Float64Array.from((ex.down as { data: Float32Array }).data), h, inter, null);
        for (let c = 0; c < h; c++) ref[c] += w[i * K2 + j]! * y[c]!;
      }
      expect(maxDiff(out.subarray(i * h, i * h + h), ref)).toBeLessThan(1e-5);
    }
  });
});
