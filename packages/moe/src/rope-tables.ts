import type { DeepseekV2Config } from './config.js';

function yarnGetMscale(scale: number, mscale: number): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function yarnCorrectionDim(nRot: number, dim: number, base: number, maxPos: number): number {
  return (dim * Math.log(maxPos / (nRot * 2 * Math.PI))) / (2 * Math.log(base));
}

/**
 * Inverse frequencies [dim/2] and the cos/sin multiplier for a rotary embedding of `dim` channels,
 * following DeepSeek-V2's rotary classes (plain, linear scaling, YaRN) in float64.
 */
export function ropeFrequencies(dim: number, cfg: Pick<DeepseekV2Config, 'rope_theta' | 'rope_scaling'>): { invFreq: Float64Array; posScale: number; mscale: number } {
  const half = dim / 2;
  const base = cfg.rope_theta;
  const extra = Float64Array.from({ length: half }, (_, i) => 1 / base ** ((2 * i) / dim));
  const rs = cfg.rope_scaling;
  if (!rs) return { invFreq: extra, posScale: 1, mscale: 1 };
  if (rs.type === 'linear') return { invFreq: extra, posScale: 1 / rs.factor, mscale: 1 };
  const low0 = Math.floor(yarnCorrectionDim(rs.beta_fast, dim, base, rs.original_max_position_embeddings));
  const high0 = Math.ceil(yarnCorrectionDim(rs.beta_slow, dim, base, rs.original_max_position_embeddings));
  const low = Math.max(low0, 0);
  let high = Math.min(high0, dim - 1);
  if (low === high) high += 0.001; // as yarn_linear_ramp_mask, avoids a division by zero
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const mask = 1 - ramp;
    inv[i] = (extra[i]! / rs.factor) * (1 - mask) + extra[i]! * mask;
  }
  const mscale = yarnGetMscale(rs.factor, rs.mscale) / yarnGetMscale(rs.factor, rs.mscale_all_dim);
  return { invFreq: inv, posScale: 1, mscale };
}

/** Extra softmax-scale factor of MLA attention: mscale(factor, mscale_all_dim)² when that key is set. */
export function attentionMscale2(cfg: Pick<DeepseekV2Config, 'rope_scaling'>): number {
  const rs = cfg.rope_scaling;
  if (!rs || !rs.mscale_all_dim) return 1;
  const m = yarnGetMscale(rs.factor, rs.mscale_all_dim);
  return m * m;
}

/** cos/sin tables [maxPos, dim/2] that grow on demand. */
export class RopeTables {
  cos = new Float32Array(0);
  sin = new Float32Array(0);
  private len = 0;
  private readonly half: number;
  constructor(private readonly freq: { invFreq: Float64Array; posScale: number; mscale: number }, initial: number) {
    this.half = freq.invFreq.length;
    this.ensure(initial);
  }
  /** Make sure positions [0, n) are covered. */
  ensure(n: number): void {
    if (n <= this.len) return;
    const len = Math.max(n, this.len * 2);
    const cos = new Float32Array(len * this.half);
    const sin = new Float32Array(len * this.half);
    const { invFreq, posScale, mscale } = this.freq;
    for (let p = 0; p < len; p++) {
      for (let i = 0; i < this.half; i++) {
        const a = p * posScale * invFreq[i]!;
        cos[p * this.half + i] = Math.cos(a) * mscale;
        sin[p * this.half + i] = Math.sin(a) * mscale;
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.len = len;
  }
}
