/**
 * The host forward pass of MoeLanguageModel: every op goes through the `Kernels` interface on host arrays.
 * Projections, norms and experts run over the rows of all sequences together; attention per sequence.
 */
import { Tensor } from '@kestrel/core';
import type { Kernels } from '@kestrel/native';
import type { KvCache } from './kv-cache.js';
import type { DenseMlp, MoeMlp, ModelWeights } from './layers.js';
import { mha, mla, type HostContext } from './host-attention.js';
import { sharedInExpertCall } from './shared-experts.js';
import type { ForwardOptions, ForwardOutput, RouterOutput } from './forward-types.js';

/**
 * Run the layers over the input embeddings of each sequence (each [T, H] row-major) against its cache,
 * which is extended in place; returns logits (and hidden states / router decisions when asked).
 */
export function hostForward(ctx: HostContext, weights: ModelWeights, embeds: Float32Array[], caches: KvCache[], options: ForwardOptions): ForwardOutput[] {
  const K = ctx.kernels;
  const c = ctx.config;
  const H = c.hidden;
  const layers = weights.layers;
  const lens = embeds.map((e) => e.length / H);
  for (const cc of caches) cc.syncToHost();
  const starts = caches.map((cc) => cc.length);
  const rowOff: number[] = [];
  let M = 0;
  for (const t of lens) { rowOff.push(M); M += t; }
  const x = new Float32Array(M * H);
  embeds.forEach((e, i) => x.set(e, rowOff[i]! * H));
  const positions = new Int32Array(M);
  embeds.forEach((_, i) => { for (let t = 0; t < lens[i]!; t++) positions[rowOff[i]! + t] = starts[i]! + t; });
  let maxPos = 0;
  embeds.forEach((_, i) => { caches[i]!.reserve(starts[i]! + lens[i]!); maxPos = Math.max(maxPos, starts[i]! + lens[i]!); });
  ctx.ropeTables.ensure(maxPos);

  const hidden: Float32Array[] | null = options.outputHiddenStates ? [x.slice()] : null;
  const routers: RouterOutput[][] = embeds.map(() => []);
  const xn = new Float32Array(M * H);
  const tmp = new Float32Array(M * H);
  for (let l = 0; l < layers.length; l++) {
    const layer = layers[l]!;
    K.rmsnorm(x, M, H, layer.inNorm, c.eps, xn);
    if (layer.attn.kind === 'mha') mha(ctx, l, layer.attn, xn, M, positions, caches, starts, lens, rowOff, tmp);
    else mla(ctx, l, layer.attn, xn, M, positions, caches, starts, lens, rowOff, tmp);
    K.add(x, tmp, x);
    K.rmsnorm(x, M, H, layer.postNorm, c.eps, xn);
    if (layer.mlp.kind === 'dense') denseMlp(K, layer.mlp, xn, M, tmp);
    else {
      const r = moeMlp(ctx, layer.mlp, xn, M, tmp);
      if (options.outputRouter) {
        const E = c.nRouted, Kk = c.topK;
        embeds.forEach((_, i) => {
          const a = rowOff[i]!, b = a + lens[i]!;
          routers[i]!.push({ layer: l, topK: Kk, nExperts: E, topkIdx: r.idx.slice(a * Kk, b * Kk), topkWeight: r.weight.slice(a * Kk, b * Kk), scores: r.scores.slice(a * E, b * E) });
        });
      }
    }
    K.add(x, tmp, x);
    if (hidden) hidden.push(x.slice());
  }
  embeds.forEach((_, i) => { caches[i]!.length = caches[i]!.hostRows = starts[i]! + lens[i]!; });

  // final norm + lm_head, on the rows asked for
  const outs: ForwardOutput[] = [];
  const V = c.vocab;
  for (let i = 0; i < embeds.length; i++) {
    const a = options.lastOnly ? rowOff[i]! + lens[i]! - 1 : rowOff[i]!;
    const t = options.lastOnly ? 1 : lens[i]!;
    const rows = x.subarray(a * H, (a + t) * H);
    const normed = new Float32Array(t * H);
    K.rmsnorm(rows, t, H, weights.finalNorm, c.eps, normed);
    const logits = new Float32Array(t * V);
    K.linear(normed, t, weights.lmHead, null, logits);
    const o: ForwardOutput = { logits: new Tensor('f32', [t, V], logits) };
    if (hidden) {
      const T = lens[i]!;
      const hs = new Float32Array((layers.length + 1) * T * H);
      hidden.forEach((h, j) => hs.set(h.subarray(rowOff[i]! * H, (rowOff[i]! + T) * H), j * T * H));
      o.hiddenStates = new Tensor('f32', [layers.length + 1, T, H], hs);
    }
    if (options.outputRouter) o.router = routers[i]!;
    outs.push(o);
  }
  return outs;
}

function denseMlp(K: Kernels, m: DenseMlp, xn: Float32Array, M: number, out: Float32Array): void {
  const inter = m.gate.n;
  const g = new Float32Array(M * inter);
  const u = new Float32Array(M * inter);
  K.linear(xn, M, m.gate, null, g);
  K.linear(xn, M, m.up, null, u);
  K.swiglu(g, u, g);
  K.linear(g, M, m.down, null, out);
}

function moeMlp(ctx: HostContext, m: MoeMlp, xn: Float32Array, M: number, out: Float32Array): { idx: Int32Array; weight: Float32Array; scores: Float32Array } {
  const K = ctx.kernels;
  const E = ctx.config.nRouted, Kk = ctx.config.topK, H = ctx.config.hidden;
  const logits = new Float32Array(M * E);
  K.linear(xn, M, m.router, null, logits);
  const idx = new Int32Array(M * Kk);
  const weight = new Float32Array(M * Kk);
  const scores = new Float32Array(M * E);
  K.moeRoute(logits, M, E, m.route, idx, weight, scores);
  // Decode: the shared experts ride in the grouped expert call where the kernels can take them.
  if (!m.expertKernels && sharedInExpertCall(K, m, xn, M, H, idx, weight, Kk, out)) return { idx, weight, scores };
  (m.expertKernels ?? K).moeExperts(xn, M, H, m.experts, idx, weight, Kk, out);
  if (m.shared) {
    const sh = new Float32Array(M * H);
    denseMlp(K, m.shared, xn, M, sh);
    K.add(out, sh, out);
  }
  return { idx, weight, scores };
}
