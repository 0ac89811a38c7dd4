import type { RopeParams } from '../contract.js';

/**
 * In-place rotary embedding with the rotate_half convention (pairs (c, c + dim/2)). With
 * `interleaved`, the channels are first de-interleaved to (x0, x2, .., x1, x3, ..) as DeepSeek's MLA
 * does, and the result stays in that order (q and k are permuted alike, so dot products agree).
 */
export function rope(x: Float32Array, p: RopeParams, positions: Int32Array, cos: Float32Array, sin: Float32Array): void {
  const half = p.dim / 2;
  const t = new Float64Array(p.dim);
  for (let r = 0; r < p.m; r++) {
    const pos = positions[r]!;
    const tb = pos * half;
    for (let h = 0; h < p.nHeads; h++) {
      const o = r * p.rowStride + h * p.headStride + p.offset;
      if (p.interleaved) {
        for (let i = 0; i < half; i++) { t[i] = x[o + 2 * i]!; t[half + i] = x[o + 2 * i + 1]!; }
      } else {
        for (let i = 0; i < p.dim; i++) t[i] = x[o + i]!;
      }
      for (let i = 0; i < half; i++) {
        const c = cos[tb + i]!;
        const s = sin[tb + i]!;
        const a = t[i]!;
        const b = t[half + i]!;
        x[o + i] = a * c - b * s;
        x[o + half + i] = b * c + a * s;
      }
    }
  }
}
