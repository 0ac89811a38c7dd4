/**
 * The shared experts of a MoE layer run inside the grouped `moeExperts` call for decode-sized steps: one more
 * expert that every token picks with weight 1, combined last (as the separate add of their output did), instead
 * of 3 linears, a swiglu and an add of their own per layer and token.
 */
import type { ExpertWeights, Kernels } from '@kestrel/native';
import type { MoeMlp } from './layers.js';

/**
 * Steps of at most this many rows run the shared experts inside the grouped expert call. Larger batches keep
 * them separate: the native grouped kernel runs the routed experts' down projection token by token when expert
 * widths differ (shared 1024 vs routed 512 on the anchor), which costs more than the saved calls at prefill.
 */
const FUSED_SHARED_MAX_ROWS = 8;
/**
 * Whether `K.moeExperts` can take the shared block as one more expert: always when its shapes and formats equal
 * the routed experts'; with a different width only on the CPU kernels (native, portable), which run experts of
 * any width (the CUDA grouped launch needs them alike, and a custom backend may too).
 */
function acceptsMixedExperts(K: Kernels, m: MoeMlp): boolean {
  const r = m.experts[0], s = m.shared!;
  if (r && r.gate.n === s.gate.n && r.gate.format === s.gate.format && r.up.format === s.up.format && r.down.format === s.down.format) return true;
  return K.name === 'portable' || K.name.startsWith('native-cpu');
}
/** Per MoE layer: its routed experts plus the shared block as the last expert (built on first use). */
const withShared = new WeakMap<MoeMlp, ExpertWeights[]>();

/**
 * out = routed experts + shared experts of `m` for rows xn [M, H] in one `moeExperts` call, when the layer has
 * shared experts, M <= FUSED_SHARED_MAX_ROWS and the kernels accept them; returns false (nothing written) otherwise.
 */
export function sharedInExpertCall(K: Kernels, m: MoeMlp, xn: Float32Array, M: number, H: number, idx: Int32Array, weight: Float32Array, topK: number, out: Float32Array): boolean {
  if (!m.shared || M > FUSED_SHARED_MAX_ROWS || !acceptsMixedExperts(K, m)) return false;
  const all = withShared.get(m) ?? [...m.experts, { gate: m.shared.gate, up: m.shared.up, down: m.shared.down }];
  withShared.set(m, all);
  const E = m.experts.length, k1 = topK + 1;
  const idx2 = new Int32Array(M * k1), w2 = new Float32Array(M * k1);
  for (let t = 0; t < M; t++) {
    idx2.set(idx.subarray(t * topK, (t + 1) * topK), t * k1);
    w2.set(weight.subarray(t * topK, (t + 1) * topK), t * k1);
    idx2[t * k1 + topK] = E;
    w2[t * k1 + topK] = 1;
  }
  K.moeExperts(xn, M, H, all, idx2, w2, k1, out);
  return true;
}
