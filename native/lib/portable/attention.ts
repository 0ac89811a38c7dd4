import type { AttentionParams } from '../contract.js';

/**
 * out[tq, nHeads*dv] = softmax(scale · q kᵀ [+ causal mask]) v, per head; k/v heads are shared by
 * nHeads/nKvHeads query heads (GQA; 1 = MQA, as MLA's absorbed form uses). Float64 accumulation.
 */
export function attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, p: AttentionParams): void {
  const { tq, tk, nHeads, nKvHeads, dqk, dv, qStride, kStride, vStride, outStride, scale, causal, qPos0 } = p;
  const group = nHeads / nKvHeads;
  const sc = new Float64Array(tk);
  const acc = new Float64Array(dv);
  for (let i = 0; i < tq; i++) {
    const visible = causal ? Math.min(tk, qPos0 + i + 1) : tk;
    for (let h = 0; h < nHeads; h++) {
      const g = Math.floor(h / group);
      const qo = i * qStride + h * dqk;
      let mx = -Infinity;
      for (let j = 0; j < visible; j++) {
        const ko = j * kStride + g * dqk;
        let s = 0;
        for (let c = 0; c < dqk; c++) s += q[qo + c]! * k[ko + c]!;
        s *= scale;
        sc[j] = s;
        if (s > mx) mx = s;
      }
      let sum = 0;
      for (let j = 0; j < visible; j++) { const e = Math.exp(sc[j]! - mx); sc[j] = e; sum += e; }
      acc.fill(0);
      for (let j = 0; j < visible; j++) {
        const w = sc[j]! / sum;
        const vo = j * vStride + g * dv;
        for (let c = 0; c < dv; c++) acc[c] += w * v[vo + c]!;
      }
      const oo = i * outStride + h * dv;
      for (let c = 0; c < dv; c++) out[oo + c] = visible > 0 ? acc[c]! : 0;
    }
  }
}
