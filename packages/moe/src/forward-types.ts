/** The inputs and results of MoeLanguageModel.forward / forwardBatch. */
import type { Tensor } from '@kestrel/core';
import type { KvCache } from './kv-cache.js';

/** One sequence of a forward call: token ids or precomputed input embeddings [T, H]. */
export interface ForwardInput {
  inputIds?: ArrayLike<number>;
  /** [T, H] row-major (Tensor or Float32Array); replaces the embedding lookup (e.g. image tokens) */
  inputsEmbeds?: Tensor | Float32Array;
  /** continue this cache (positions start at cache.length); it is extended in place */
  cache?: KvCache;
}

/** What to return besides logits. */
export interface ForwardOptions {
  /** residual stream after the embeddings and after each layer: [L+1, T, H] */
  outputHiddenStates?: boolean;
  /** router top-k per MoE layer */
  outputRouter?: boolean;
  /** logits of the last position only ([1, V]) */
  lastOnly?: boolean;
}

/** Router decisions of one MoE layer for the rows of one sequence. */
export interface RouterOutput { layer: number; topkIdx: Int32Array; topkWeight: Float32Array; scores: Float32Array; topK: number; nExperts: number }

/** Result of a forward pass over one sequence. */
export interface ForwardOutput {
  /** [T, vocab] (or [1, vocab] with lastOnly) */
  logits: Tensor<'f32'>;
  hiddenStates?: Tensor<'f32'>;
  router?: RouterOutput[];
}
