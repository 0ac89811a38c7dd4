/** The in-memory weights of one decoder layer, as MoeLanguageModel holds them (shared by its host and device paths). */
import type { ExpertWeights, Kernels, MoeRouteParams, PreparedLinear } from '@kestrel/native';

export interface MhaWeights { kind: 'mha'; q: PreparedLinear; k: PreparedLinear; v: PreparedLinear; o: PreparedLinear; qb: Float32Array | null; kb: Float32Array | null; vb: Float32Array | null; ob: Float32Array | null }
export interface MlaWeights {
  kind: 'mla';
  qA: PreparedLinear | null; qANorm: Float32Array | null; qB: PreparedLinear | null; q: PreparedLinear | null; qAb: Float32Array | null;
  kvA: PreparedLinear; kvAb: Float32Array | null; kvANorm: Float32Array; kvB: PreparedLinear;
  /** per head: W_ukᵀ [kv_lora, nope] (absorbed query) and W_uv [v, kv_lora] (absorbed output) */
  ukT: PreparedLinear[]; uv: PreparedLinear[];
  o: PreparedLinear; ob: Float32Array | null;
}
export interface DenseMlp { kind: 'dense'; gate: PreparedLinear; up: PreparedLinear; down: PreparedLinear }
export interface MoeMlp {
  kind: 'moe'; router: PreparedLinear; route: MoeRouteParams; experts: ExpertWeights[]; shared: DenseMlp | null;
  /** the CPU kernels when this layer's routed experts were placed in host memory (expertsOn), else null */
  expertKernels: Kernels | null;
}
export interface Layer { inNorm: Float32Array; postNorm: Float32Array; attn: MhaWeights | MlaWeights; mlp: DenseMlp | MoeMlp }


/** All in-memory weights of the language model. */
export interface ModelWeights {
  embedTable: PreparedLinear;
  layers: Layer[];
  finalNorm: Float32Array;
  /** the embedding table itself when the embeddings are tied */
  lmHead: PreparedLinear;
}
