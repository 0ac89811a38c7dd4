import type { ModelConfig } from './config.js';

/**
 * Tensor names and shapes of a DeepSeek-V2 checkpoint, as `DeepseekV2ForCausalLM` in DeepSeek's
 * `modeling_deepseek.py` declares its parameters (MHA layers use transformers' `LlamaAttention`).
 * `prefix` is `language.` inside a DeepSeek-VL2 checkpoint. Used to check a checkpoint's header
 * before reading any weight, and to write checkpoints of the published geometry.
 */
export function languageTensorShapes(c: ModelConfig, prefix = ''): Map<string, number[]> {
  const S = new Map<string, number[]>();
  const H = c.hidden;
  const m = `${prefix}model.`;
  const bias = (name: string, n: number): void => { if (c.attentionBias) S.set(`${name}.bias`, [n]); };
  S.set(`${m}embed_tokens.weight`, [c.vocab, H]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `${m}layers.${l}.`;
    const a = `${p}self_attn.`;
    if (c.useMla) {
      const qHead = c.nope + c.rope;
      if (c.qLoraRank === null) S.set(`${a}q_proj.weight`, [c.nHeads * qHead, H]);
      else {
        S.set(`${a}q_a_proj.weight`, [c.qLoraRank, H]);
        bias(`${a}q_a_proj`, c.qLoraRank);
        S.set(`${a}q_a_layernorm.weight`, [c.qLoraRank]);
        S.set(`${a}q_b_proj.weight`, [c.nHeads * qHead, c.qLoraRank]);
      }
      S.set(`${a}kv_a_proj_with_mqa.weight`, [c.kvLoraRank + c.rope, H]);
      bias(`${a}kv_a_proj_with_mqa`, c.kvLoraRank + c.rope);
      S.set(`${a}kv_a_layernorm.weight`, [c.kvLoraRank]);
      S.set(`${a}kv_b_proj.weight`, [c.nHeads * (c.nope + c.vHead), c.kvLoraRank]);
      S.set(`${a}o_proj.weight`, [H, c.nHeads * c.vHead]);
      bias(`${a}o_proj`, H);
    } else {
      const d = c.headDim;
      for (const [n, rows] of [['q_proj', c.nHeads * d], ['k_proj', c.nKvHeads * d], ['v_proj', c.nKvHeads * d]] as const) {
        S.set(`${a}${n}.weight`, [rows, H]);
        bias(`${a}${n}`, rows);
      }
      S.set(`${a}o_proj.weight`, [H, c.nHeads * d]);
      bias(`${a}o_proj`, H);
    }
    const mlp = `${p}mlp.`;
    const ffn = (q: string, inner: number): void => {
      S.set(`${q}gate_proj.weight`, [inner, H]);
      S.set(`${q}up_proj.weight`, [inner, H]);
      S.set(`${q}down_proj.weight`, [H, inner]);
    };
    if (c.isMoeLayer[l]) {
      S.set(`${mlp}gate.weight`, [c.nRouted, H]);
      if (c.raw.topk_method === 'noaux_tc') S.set(`${mlp}gate.e_score_correction_bias`, [c.nRouted]);
      for (let e = 0; e < c.nRouted; e++) ffn(`${mlp}experts.${e}.`, c.moeIntermediate);
      if (c.nShared > 0) ffn(`${mlp}shared_experts.`, c.moeIntermediate * c.nShared);
    } else ffn(mlp, c.intermediate);
    S.set(`${p}input_layernorm.weight`, [H]);
    S.set(`${p}post_attention_layernorm.weight`, [H]);
  }
  S.set(`${m}norm.weight`, [H]);
  if (!c.tied) S.set(`${prefix}lm_head.weight`, [c.vocab, H]);
  return S;
}
