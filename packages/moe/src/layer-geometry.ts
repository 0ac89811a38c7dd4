/**
 * The geometry of each attention layer, written once for the host pass (host-attention.ts) and the device pass
 * (device-forward.ts): the rope and attention parameter blocks of MHA and of MLA (absorbed over the cached
 * latent, or on decompressed k/v). The passes differ in where buffers live, not in these shapes.
 */
import type { AttentionParams, RopeParams } from '@kestrel/native';
import type { ModelConfig } from './config.js';
import { attentionMscale2 } from './rope-tables.js';

/** MHA: rotate_half rope on q [M, nh*hd] and k [M, nkv*hd]. */
export function mhaRope(c: ModelConfig, m: number): { q: RopeParams; k: RopeParams } {
  const hd = c.headDim;
  return {
    q: { m, nHeads: c.nHeads, headStride: hd, rowStride: c.nHeads * hd, offset: 0, dim: hd, interleaved: false },
    k: { m, nHeads: c.nKvHeads, headStride: hd, rowStride: c.nKvHeads * hd, offset: 0, dim: hd, interleaved: false },
  };
}

/** MHA: causal attention of `t` new rows starting at position `s` over the cached k/v rows. */
export function mhaAttention(c: ModelConfig, t: number, s: number): AttentionParams {
  const hd = c.headDim, nh = c.nHeads, nkv = c.nKvHeads, w = nkv * hd;
  return {
    tq: t, tk: s + t, nHeads: nh, nKvHeads: nkv, dqk: hd, dv: hd,
    qStride: nh * hd, kStride: w, vStride: w, outStride: nh * hd,
    scale: 1 / Math.sqrt(hd), causal: true, qPos0: s,
  };
}

/** MLA: DeepSeek's de-interleaved rope on q_pe (per head, after q_nope) and on k_pe (after the latent). */
export function mlaRope(c: ModelConfig, m: number): { q: RopeParams; kva: RopeParams } {
  const nh = c.nHeads, dq = c.nope + c.rope, lw = c.kvLoraRank + c.rope;
  return {
    q: { m, nHeads: nh, headStride: dq, rowStride: nh * dq, offset: c.nope, dim: c.rope, interleaved: true },
    kva: { m, nHeads: 1, headStride: lw, rowStride: lw, offset: c.kvLoraRank, dim: c.rope, interleaved: true },
  };
}

/** MLA softmax scale: yarn's mscale² over sqrt(q head width). */
export function mlaScale(c: ModelConfig): number {
  return attentionMscale2(c.raw) / Math.sqrt(c.nope + c.rope);
}

/** MLA absorbed: the per-head absorbed queries [t, nh, kvl+rope] attend over the cached [latent | k_pe] rows. */
export function mlaAbsorbedAttention(c: ModelConfig, t: number, tk: number, s: number): AttentionParams {
  const nh = c.nHeads, kvl = c.kvLoraRank, lw = kvl + c.rope;
  return {
    tq: t, tk, nHeads: nh, nKvHeads: 1, dqk: lw, dv: kvl,
    qStride: nh * lw, kStride: lw, vStride: lw, outStride: nh * kvl,
    scale: mlaScale(c), causal: true, qPos0: s,
  };
}

/** MLA naive: queries [t, nh, dq] over k [tk, nh, dq] and v [tk, nh, vh] decompressed from the latent. */
export function mlaNaiveAttention(c: ModelConfig, t: number, tk: number, s: number): AttentionParams {
  const nh = c.nHeads, dq = c.nope + c.rope, vh = c.vHead;
  return {
    tq: t, tk, nHeads: nh, nKvHeads: nh, dqk: dq, dv: vh,
    qStride: nh * dq, kStride: nh * dq, vStride: nh * vh, outStride: nh * vh,
    scale: mlaScale(c), causal: true, qPos0: s,
  };
}
