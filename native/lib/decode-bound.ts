/**
 * The decode bandwidth bound: bytes of weights one decoded token reads, for a DeepSeek-V2 HF config. Used by
 * cuda-decode.test.ts and native/cuda/gpu/run-decode.mjs (bound tok/s = copy bandwidth / these bytes).
 */

/** Bytes per linear-weight parameter by in-memory dtype: bf16, f32, and the contract's q8 (int8 + one f32 scale per 32). */
export const BYTES_PER_PARAM = { f32: 4, bf16: 2, int8: 1 + 4 / 32 } as const;

/** Which decoder layers are MoE in DeepSeek-V2's rule: index >= first_k_dense_replace and index % moe_layer_freq == 0. */
function moeLayerCount(c: Record<string, number | null>): number {
  const layers = c.num_hidden_layers!, first = c.first_k_dense_replace ?? 0, freq = c.moe_layer_freq ?? 1;
  if (!c.n_routed_experts) return 0;
  let n = 0;
  for (let i = first; i < layers; i++) if (i % freq === 0) n++;
  return n;
}

/**
 * Bytes of weights read per decoded token, from the HF config: attention, the dense MLPs, the top-k routed +
 * shared experts and lm_head at `bytesPerParam`, plus the f32 router. The embedding (one row) and norms are ignored.
 */
export function activeWeightBytes(c: Record<string, number | null>, bytesPerParam: number): number {
  return activeParams(c) * bytesPerParam + moeLayerCount(c) * (c.n_routed_experts ?? 0) * c.hidden_size! * 4;
}

/**
 * Linear-weight parameters one token multiplies with (attention — MLA, or MHA/GQA when kv_lora_rank is null —,
 * dense MLPs, top-k routed + shared experts, lm_head; not the router, embedding or norms): the multiply-adds
 * per decoded token.
 */
export function activeParams(c: Record<string, number | null>): number {
  const h = c.hidden_size!, nh = c.num_attention_heads!;
  let attn: number;
  if (c.kv_lora_rank) {
    attn = mlaAttentionParams({
      hidden: h, nHeads: nh, nope: c.qk_nope_head_dim!, rope: c.qk_rope_head_dim!, vHead: c.v_head_dim!,
      kvLoraRank: c.kv_lora_rank, qLoraRank: c.q_lora_rank ?? null,
    });
  } else {
    const hd = h / nh, nkv = c.num_key_value_heads ?? nh;
    attn = 2 * h * nh * hd + 2 * h * nkv * hd;  // q, o and k, v
  }
  const dense = 3 * h * c.intermediate_size!;
  const moe = (c.num_experts_per_tok! + (c.n_shared_experts ?? 0)) * 3 * h * c.moe_intermediate_size!;
  const layers = c.num_hidden_layers!, nMoe = moeLayerCount(c);
  return layers * attn + (layers - nMoe) * dense + nMoe * moe + c.vocab_size! * h;
}

/** Parameters of one MLA attention layer: q_proj (or q_a + q_b with q-LoRA), kv_a_proj_with_mqa, kv_b_proj and o_proj. */
export function mlaAttentionParams(a: { hidden: number; nHeads: number; nope: number; rope: number; vHead: number; kvLoraRank: number; qLoraRank: number | null }): number {
  const dq = a.nope + a.rope;
  const q = a.qLoraRank ? a.qLoraRank * a.hidden + a.nHeads * dq * a.qLoraRank : a.nHeads * dq * a.hidden;
  return q + (a.kvLoraRank + a.rope) * a.hidden + a.nHeads * (a.nope + a.vHead) * a.kvLoraRank + a.hidden * a.nHeads * a.vHead;
}
