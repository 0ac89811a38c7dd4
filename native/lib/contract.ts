/**
 * The kernel contract: the small set of ops every model in Kestrel calls, and that every backend
 * (portable TypeScript, native CPU, CUDA) implements. Models depend only on this interface, so a
 * backend slots in without touching model code.
 *
 * Conventions (all ops):
 * - Activations are row-major Float32Array views; `m` is the number of rows (tokens).
 * - Outputs are written into caller-provided arrays (no allocation in hot paths); `out` may alias an
 *   input only where an op says so.
 * - Weight matrices are stored as checkpoints store them: W [n, k] = (out features, in features).
 * - Ops are synchronous; a native backend parallelises inside an op with its own thread pool. Code that
 *   must keep an event loop responsive runs model work in a worker thread.
 */

/** Block size of the int8 weight format (like ggml's Q8_0). */
export const Q8_BLOCK = 32;

/** Storage format of a weight matrix. */
export type WeightFormat = 'f32' | 'bf16' | 'q8';

/**
 * A weight matrix W [n, k].
 * - `f32`: `data` Float32Array of n*k.
 * - `bf16`: `data` Uint16Array of n*k bf16 bit patterns.
 * - `q8`: each row is padded with zeros to `kp = ceil(k/32)*32`; `data` Int8Array of n*kp and `scales`
 *   Float32Array of n*kp/32, one per block of 32 along k: w[r][c] = data[r*kp+c] * scales[r*kp/32 + c/32].
 */
export type LinearWeight =
  | { format: 'f32'; n: number; k: number; data: Float32Array }
  | { format: 'bf16'; n: number; k: number; data: Uint16Array }
  | { format: 'q8'; n: number; k: number; data: Int8Array; scales: Float32Array };

/**
 * A weight after `prepareLinear`: the backend may attach a repacked copy (e.g. a native or device
 * buffer) in `handle`. Models treat it as opaque and pass it back to `linear` / `moeExperts`.
 */
export type PreparedLinear = LinearWeight & { readonly handle?: unknown };

/** Gating configuration of a DeepSeek-V2-family MoE router. */
export interface MoeRouteParams {
  /** experts per token (num_experts_per_tok) */
  topK: number;
  /** 'softmax' or 'sigmoid' over the router logits (computed in f32). */
  scoring: 'softmax' | 'sigmoid';
  /** greedy | group_limited_greedy | noaux_tc */
  method: 'greedy' | 'group_limited_greedy' | 'noaux_tc';
  /** number of expert groups (group methods) */
  nGroup: number;
  /** groups kept per token (group methods) */
  topkGroup: number;
  /** e_score_correction_bias [E] (noaux_tc only: used for selection, not for weights) */
  bias: Float32Array | null;
  /** normalise the top-k weights to sum 1 (only when topK > 1), before scaling */
  normTopkProb: boolean;
  /** routed_scaling_factor */
  scalingFactor: number;
}

/** One routed expert: a SiLU-gated MLP down(silu(gate(x)) * up(x)). */
export interface ExpertWeights {
  gate: PreparedLinear;
  up: PreparedLinear;
  down: PreparedLinear;
}

/** Shapes of a (possibly grouped-query, possibly MLA-shaped) attention call. */
export interface AttentionParams {
  /** query rows in this call */
  tq: number;
  /** key/value rows available (cache length including the new rows) */
  tk: number;
  nHeads: number;
  /** heads of k/v; nHeads must be a multiple (GQA); 1 = shared */
  nKvHeads: number;
  /** q/k head dim and v head dim (MLA has dqk != dv) */
  dqk: number;
  dv: number;
  /** row strides in elements (allow views into packed buffers) */
  qStride: number;
  kStride: number;
  vStride: number;
  outStride: number;
  /** softmax scale applied to q·k */
  scale: number;
  /** causal: query i sits at absolute position qPos0 + i and sees keys 0..qPos0+i. false = bidirectional */
  causal: boolean;
  qPos0: number;
}

/** Rotary embedding geometry for one call (in-place on x). */
export interface RopeParams {
  /** rows (tokens) */
  m: number;
  nHeads: number;
  /** elements between consecutive heads in a row, and between rows */
  headStride: number;
  rowStride: number;
  /** first rotated channel inside each head, and number of rotated channels (even) */
  offset: number;
  dim: number;
  /** DeepSeek MLA variant: de-interleave (x0,x2,..,x1,x3,..) before rotate_half */
  interleaved: boolean;
}

/** The op set. Every backend implements all of it. */
export interface Kernels {
  /** 'portable', 'native-cpu (avx512-vnni)', 'cuda', ... */
  readonly name: string;

  /** Prepare a weight once at load (repack, upload). Portable returns it unchanged. */
  prepareLinear(w: LinearWeight): PreparedLinear;
  /**
   * Optional: free what `prepareLinear` attached (native or device buffers) now instead of at garbage
   * collection; the weight must not be used afterwards. Models call it from `dispose()`.
   */
  releaseLinear?(w: PreparedLinear): void;
  /** out[m,n] = x[m,k] · W^T (+ bias[n]) */
  linear(x: Float32Array, m: number, w: PreparedLinear, bias: Float32Array | null, out: Float32Array): void;

  /** out = w * x / sqrt(mean(x^2) + eps), per row of n */
  rmsnorm(x: Float32Array, m: number, n: number, weight: Float32Array, eps: number, out: Float32Array): void;
  /** out = (x - mean) / sqrt(var + eps) * w + b, per row of n */
  layernorm(x: Float32Array, m: number, n: number, weight: Float32Array, bias: Float32Array, eps: number, out: Float32Array): void;
  /** GELU, tanh approximation or exact erf; out may alias x */
  gelu(x: Float32Array, out: Float32Array, approx: 'tanh' | 'erf'): void;
  /** SiLU; out may alias x */
  silu(x: Float32Array, out: Float32Array): void;
  /** out = silu(gate) * up; out may alias gate */
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array): void;
  /** in-place softmax over each row of n */
  softmax(x: Float32Array, m: number, n: number): void;
  /** out = a + b (same length); out may alias a */
  add(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** out = a * b (same length); out may alias a */
  mul(a: Float32Array, b: Float32Array, out: Float32Array): void;

  /** out[i,:] = table[ids[i], :] decoded to f32 */
  embedding(table: PreparedLinear, ids: Int32Array, out: Float32Array): void;

  /**
   * In-place rotary embedding. `cos`/`sin` are tables [maxPos, dim/2]; row r uses position positions[r].
   * rotate_half convention: pairs (c, c + dim/2).
   */
  rope(x: Float32Array, p: RopeParams, positions: Int32Array, cos: Float32Array, sin: Float32Array): void;

  /** out[tq, nHeads*dv] = softmax(scale · q kᵀ [+ causal mask]) v */
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, p: AttentionParams): void;

  /**
   * Router: from logits [m, E] compute scores, select topK experts per row and their weights.
   * Writes idx [m, topK] (descending selection score), weight [m, topK], and scores [m, E] (pre-bias).
   */
  moeRoute(logits: Float32Array, m: number, nExperts: number, p: MoeRouteParams, idx: Int32Array, weight: Float32Array, scores: Float32Array): void;

  /**
   * Routed experts: out[m, h] = Σ_k weight[r,k] · expert_{idx[r,k]}(x[r]). Tokens are gathered per
   * expert so each expert runs once per call. `out` is overwritten.
   */
  moeExperts(x: Float32Array, m: number, h: number, experts: ExpertWeights[], idx: Int32Array, weight: Float32Array, topK: number, out: Float32Array): void;
}
