import type { ExpertWeights, MoeRouteParams, PreparedLinear } from '../contract.js';
import { linear } from './linear.js';
import { swiglu } from './elementwise.js';

/** Indices of the `k` largest values of `v` (descending; ties keep the lower index first). */
function topkIndices(v: Float64Array, k: number): number[] {
  const idx = Array.from({ length: v.length }, (_, i) => i);
  idx.sort((a, b) => v[b]! - v[a]! || a - b);
  return idx.slice(0, k);
}

/**
 * DeepSeek-V2/V3 router. Scores = softmax or sigmoid of the logits; experts of groups that are not
 * kept get score 0.0 (not -inf, as the reference does); noaux_tc selects on scores + bias but weighs by
 * the un-biased scores. Writes idx/weight [m, topK] in descending selection score and scores [m, E].
 */
export function moeRoute(logits: Float32Array, m: number, nExperts: number, p: MoeRouteParams, idx: Int32Array, weight: Float32Array, scores: Float32Array): void {
  const E = nExperts;
  const K = p.topK;
  const s = new Float64Array(E);
  const sel = new Float64Array(E);
  const perGroup = E / p.nGroup;
  for (let r = 0; r < m; r++) {
    const o = r * E;
    if (p.scoring === 'softmax') {
      let mx = -Infinity;
      for (let e = 0; e < E; e++) if (logits[o + e]! > mx) mx = logits[o + e]!;
      let sum = 0;
      for (let e = 0; e < E; e++) { s[e] = Math.exp(logits[o + e]! - mx); sum += s[e]!; }
      for (let e = 0; e < E; e++) s[e] = s[e]! / sum;
    } else {
      for (let e = 0; e < E; e++) s[e] = 1 / (1 + Math.exp(-logits[o + e]!));
    }
    // The reference keeps scores in f32; round so selection and weights see the same values it does.
    for (let e = 0; e < E; e++) { scores[o + e] = s[e]!; s[e] = scores[o + e]!; }
    if (p.method === 'noaux_tc') {
      const b = p.bias;
      for (let e = 0; e < E; e++) sel[e] = Math.fround(s[e]! + (b ? b[e]! : 0));
    } else {
      sel.set(s);
    }
    if (p.method !== 'greedy') {
      const gs = new Float64Array(p.nGroup);
      for (let g = 0; g < p.nGroup; g++) {
        const base = g * perGroup;
        if (p.method === 'group_limited_greedy') {
          let mx = -Infinity;
          for (let e = 0; e < perGroup; e++) mx = Math.max(mx, sel[base + e]!);
          gs[g] = mx;
        } else {
          // sum of the top-2 selection scores of the group
          let a = -Infinity, b2 = -Infinity;
          for (let e = 0; e < perGroup; e++) {
            const v = sel[base + e]!;
            if (v > a) { b2 = a; a = v; } else if (v > b2) b2 = v;
          }
          gs[g] = perGroup >= 2 ? a + b2 : a;
        }
      }
      const keep = new Set(topkIndices(gs, p.topkGroup));
      for (let g = 0; g < p.nGroup; g++) {
        if (keep.has(g)) continue;
        for (let e = 0; e < perGroup; e++) sel[g * perGroup + e] = 0;
      }
    }
    const top = topkIndices(sel, K);
    let sum = 0;
    for (let j = 0; j < K; j++) {
      const e = top[j]!;
      idx[r * K + j] = e;
      // greedy / group-limited weigh by the (masked) selection score, noaux_tc by the raw score
      const w = p.method === 'noaux_tc' ? s[e]! : sel[e]!;
      weight[r * K + j] = w;
      sum += Math.fround(w);
    }
    const norm = K > 1 && p.normTopkProb;
    const denom = Math.fround(Math.fround(sum) + 1e-20);
    for (let j = 0; j < K; j++) {
      const w = weight[r * K + j]!;
      weight[r * K + j] = norm ? Math.fround(w / denom) * p.scalingFactor : w * p.scalingFactor;
    }
  }
}

/**
 * Routed experts: out[m, h] = Σ_k weight[r,k] · down(silu(gate(x)) * up(x)) of expert idx[r,k]. Tokens
 * are gathered per expert so each expert runs once per call; contributions are summed in float64.
 */
export function moeExperts(x: Float32Array, m: number, h: number, experts: ExpertWeights[], idx: Int32Array, weight: Float32Array, topK: number, out: Float32Array): void {
  const lists: number[][] = experts.map(() => []);
  for (let r = 0; r < m; r++) {
    for (let j = 0; j < topK; j++) {
      const e = idx[r * topK + j]!;
      if (!(e >= 0 && e < experts.length)) throw new RangeError(`moeExperts: expert index ${e} outside [0, ${experts.length})`);
      lists[e]!.push(r * topK + j);
    }
  }
  const acc = new Float64Array(m * h);
  for (let e = 0; e < experts.length; e++) {
    const slots = lists[e]!;
    if (slots.length === 0) continue;
    const ex = experts[e]!;
    const n = slots.length;
    const inter = ex.gate.n;
    const xs = new Float32Array(n * h);
    for (let t = 0; t < n; t++) {
      const r = Math.floor(slots[t]! / topK);
      xs.set(x.subarray(r * h, r * h + h), t * h);
    }
    const g = new Float32Array(n * inter);
    const u = new Float32Array(n * inter);
    linear(xs, n, ex.gate as PreparedLinear, null, g);
    linear(xs, n, ex.up as PreparedLinear, null, u);
    swiglu(g, u, g);
    const y = new Float32Array(n * h);
    linear(g, n, ex.down as PreparedLinear, null, y);
    for (let t = 0; t < n; t++) {
      const slot = slots[t]!;
      const r = Math.floor(slot / topK);
      const w = weight[slot]!;
      for (let c = 0; c < h; c++) acc[r * h + c] += w * y[t * h + c]!;
    }
  }
  for (let i = 0; i < m * h; i++) out[i] = acc[i]!;
}
