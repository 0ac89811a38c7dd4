/** Host attention of MoeLanguageModel: MHA, and MLA in its absorbed and decompressed forms, over the `Kernels` ops. */
import type { Kernels } from '@kestrel/native';
import type { ModelConfig } from './config.js';
import type { KvCache } from './kv-cache.js';
import type { MhaWeights, MlaWeights } from './layers.js';
import { attentionMscale2, type RopeTables } from './rope-tables.js';

/** What the host forward pass reads of the model besides the layer weights. */
export interface HostContext {
  config: ModelConfig;
  kernels: Kernels;
  ropeTables: RopeTables;
  mlaMode: 'auto' | 'absorbed' | 'naive';
}

export function mha(ctx: HostContext, l: number, a: MhaWeights, xn: Float32Array, M: number, positions: Int32Array, caches: KvCache[], starts: number[], lens: number[], rowOff: number[], out: Float32Array): void {
  const K = ctx.kernels;
  const c = ctx.config;
  const hd = c.headDim, nh = c.nHeads, nkv = c.nKvHeads;
  const q = new Float32Array(M * nh * hd);
  const k = new Float32Array(M * nkv * hd);
  const v = new Float32Array(M * nkv * hd);
  K.linear(xn, M, a.q, a.qb, q);
  K.linear(xn, M, a.k, a.kb, k);
  K.linear(xn, M, a.v, a.vb, v);
  const rt = ctx.ropeTables;
  K.rope(q, { m: M, nHeads: nh, headStride: hd, rowStride: nh * hd, offset: 0, dim: hd, interleaved: false }, positions, rt.cos, rt.sin);
  K.rope(k, { m: M, nHeads: nkv, headStride: hd, rowStride: nkv * hd, offset: 0, dim: hd, interleaved: false }, positions, rt.cos, rt.sin);
  const attn = new Float32Array(M * nh * hd);
  const w = nkv * hd;
  for (let i = 0; i < caches.length; i++) {
    const [kc, vc] = caches[i]!.layers[l]!;
    const r0 = rowOff[i]!, t = lens[i]!, s = starts[i]!;
    kc!.set(k.subarray(r0 * w, (r0 + t) * w), s * w);
    vc!.set(v.subarray(r0 * w, (r0 + t) * w), s * w);
    K.attention(q.subarray(r0 * nh * hd, (r0 + t) * nh * hd), kc!, vc!, attn.subarray(r0 * nh * hd, (r0 + t) * nh * hd), {
      tq: t, tk: s + t, nHeads: nh, nKvHeads: nkv, dqk: hd, dv: hd,
      qStride: nh * hd, kStride: w, vStride: w, outStride: nh * hd,
      scale: 1 / Math.sqrt(hd), causal: true, qPos0: s,
    });
  }
  K.linear(attn, M, a.o, a.ob, out);
}

export function mla(ctx: HostContext, l: number, a: MlaWeights, xn: Float32Array, M: number, positions: Int32Array, caches: KvCache[], starts: number[], lens: number[], rowOff: number[], out: Float32Array): void {
  const K = ctx.kernels;
  const c = ctx.config;
  const nh = c.nHeads, nope = c.nope, rope = c.rope, dq = nope + rope, kvl = c.kvLoraRank, vh = c.vHead;
  const q = new Float32Array(M * nh * dq);
  if (a.qA) {
    const qa = new Float32Array(M * c.qLoraRank!);
    K.linear(xn, M, a.qA, a.qAb, qa);
    K.rmsnorm(qa, M, c.qLoraRank!, a.qANorm!, c.eps, qa);
    K.linear(qa, M, a.qB!, null, q);
  } else {
    K.linear(xn, M, a.q!, null, q);
  }
  const lw = kvl + rope;
  const kva = new Float32Array(M * lw);
  K.linear(xn, M, a.kvA, a.kvAb, kva);
  // normalise the latent part of each row (rows are [c | k_pe], so copy c out and back)
  const lat = new Float32Array(M * kvl);
  for (let r = 0; r < M; r++) lat.set(kva.subarray(r * lw, r * lw + kvl), r * kvl);
  K.rmsnorm(lat, M, kvl, a.kvANorm, c.eps, lat);
  for (let r = 0; r < M; r++) kva.set(lat.subarray(r * kvl, r * kvl + kvl), r * lw);
  const rt = ctx.ropeTables;
  K.rope(q, { m: M, nHeads: nh, headStride: dq, rowStride: nh * dq, offset: nope, dim: rope, interleaved: true }, positions, rt.cos, rt.sin);
  K.rope(kva, { m: M, nHeads: 1, headStride: lw, rowStride: lw, offset: kvl, dim: rope, interleaved: true }, positions, rt.cos, rt.sin);
  const scale = attentionMscale2(c.raw) / Math.sqrt(dq);
  const attn = new Float32Array(M * nh * vh);
  for (let i = 0; i < caches.length; i++) {
    const cache = caches[i]!.layers[l]![0]!;
    const r0 = rowOff[i]!, t = lens[i]!, s = starts[i]!, tk = s + t;
    cache.set(kva.subarray(r0 * lw, (r0 + t) * lw), s * lw);
    const qi = q.subarray(r0 * nh * dq, (r0 + t) * nh * dq);
    const oi = attn.subarray(r0 * nh * vh, (r0 + t) * nh * vh);
    // cost (multiply-adds) of the two equivalent forms; decode (t small) favours absorbed
    const absorbedCost = t * tk * nh * (2 * kvl + rope) + t * nh * 2 * nope * kvl;
    const naiveCost = tk * kvl * nh * (nope + vh) + t * tk * nh * (dq + vh);
    const absorbed = ctx.mlaMode === 'absorbed' || (ctx.mlaMode === 'auto' && absorbedCost <= naiveCost);
    if (absorbed) mlaAbsorbed(ctx, a, qi, t, cache, tk, s, scale, oi);
    else mlaNaive(ctx, a, qi, t, cache, tk, s, scale, oi);
  }
  K.linear(attn, M, a.o, a.ob, out);
}

/** Attention over the cached latent: q_nope is mapped into latent space by W_ukᵀ, the output back by W_uv. */
function mlaAbsorbed(ctx: HostContext, a: MlaWeights, q: Float32Array, t: number, cache: Float32Array, tk: number, s: number, scale: number, out: Float32Array): void {
  const K = ctx.kernels;
  const c = ctx.config;
  const nh = c.nHeads, nope = c.nope, rope = c.rope, dq = nope + rope, kvl = c.kvLoraRank, vh = c.vHead, lw = kvl + rope;
  const qAbs = new Float32Array(t * nh * lw);
  const qn = new Float32Array(t * nope);
  const qk = new Float32Array(t * kvl);
  for (let h = 0; h < nh; h++) {
    for (let r = 0; r < t; r++) qn.set(q.subarray(r * nh * dq + h * dq, r * nh * dq + h * dq + nope), r * nope);
    K.linear(qn, t, a.ukT[h]!, null, qk);
    for (let r = 0; r < t; r++) {
      qAbs.set(qk.subarray(r * kvl, r * kvl + kvl), r * nh * lw + h * lw);
      qAbs.set(q.subarray(r * nh * dq + h * dq + nope, r * nh * dq + (h + 1) * dq), r * nh * lw + h * lw + kvl);
    }
  }
  const o = new Float32Array(t * nh * kvl);
  K.attention(qAbs, cache, cache, o, {
    tq: t, tk, nHeads: nh, nKvHeads: 1, dqk: lw, dv: kvl,
    qStride: nh * lw, kStride: lw, vStride: lw, outStride: nh * kvl,
    scale, causal: true, qPos0: s,
  });
  const oh = new Float32Array(t * kvl);
  const vo = new Float32Array(t * vh);
  for (let h = 0; h < nh; h++) {
    for (let r = 0; r < t; r++) oh.set(o.subarray(r * nh * kvl + h * kvl, r * nh * kvl + (h + 1) * kvl), r * kvl);
    K.linear(oh, t, a.uv[h]!, null, vo);
    for (let r = 0; r < t; r++) out.set(vo.subarray(r * vh, (r + 1) * vh), r * nh * vh + h * vh);
  }
}

/** Attention with k/v decompressed from the cached latent by kv_b_proj (cheaper for long prefill). */
function mlaNaive(ctx: HostContext, a: MlaWeights, q: Float32Array, t: number, cache: Float32Array, tk: number, s: number, scale: number, out: Float32Array): void {
  const K = ctx.kernels;
  const c = ctx.config;
  const nh = c.nHeads, nope = c.nope, rope = c.rope, dq = nope + rope, kvl = c.kvLoraRank, vh = c.vHead, lw = kvl + rope;
  const lat = new Float32Array(tk * kvl);
  for (let j = 0; j < tk; j++) lat.set(cache.subarray(j * lw, j * lw + kvl), j * kvl);
  const kvb = new Float32Array(tk * nh * (nope + vh));
  K.linear(lat, tk, a.kvB, null, kvb);
  const kk = new Float32Array(tk * nh * dq);
  const vv = new Float32Array(tk * nh * vh);
  for (let j = 0; j < tk; j++) {
    const kpe = cache.subarray(j * lw + kvl, (j + 1) * lw);
    for (let h = 0; h < nh; h++) {
      const src = j * nh * (nope + vh) + h * (nope + vh);
      kk.set(kvb.subarray(src, src + nope), j * nh * dq + h * dq);
      kk.set(kpe, j * nh * dq + h * dq + nope);
      vv.set(kvb.subarray(src + nope, src + nope + vh), j * nh * vh + h * vh);
    }
  }
  K.attention(q, kk, vv, out, {
    tq: t, tk, nHeads: nh, nKvHeads: nh, dqk: dq, dv: vh,
    qStride: nh * dq, kStride: nh * dq, vStride: nh * vh, outStride: nh * vh,
    scale, causal: true, qPos0: s,
  });
}
