import { z } from 'zod';
import { KestrelError, warnUnknownConfigKeys } from '@kestrel/core';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const tokenIds = z.union([nonNegInt, z.array(nonNegInt)]).nullable();

/** rope_scaling of the DeepSeek-V2 family: YaRN (with mscale), linear, or none. */
const ropeScalingObject = z.union([
  z.object({
    type: z.literal('yarn'),
    factor: z.number().positive(),
    original_max_position_embeddings: posInt.default(4096),
    beta_fast: z.number().positive().default(32),
    beta_slow: z.number().positive().default(1),
    mscale: z.number().default(1),
    mscale_all_dim: z.number().default(0),
  }).strict(),
  z.object({
    type: z.literal('linear'),
    factor: z.number().positive(),
    mscale_all_dim: z.number().default(0),
  }).strict(),
]);
/** Newer transformers also write (or only write) `rope_type`; it must agree with `type`. */
const ropeScalingSchema = z.preprocess((v) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const { rope_type: rt, ...rest } = v as Record<string, unknown>;
  if (rt === undefined) return v;
  if (rest.type !== undefined && rest.type !== rt) return { ...rest, type: `${String(rest.type)} (rope_type ${String(rt)})` };
  return { ...rest, type: rt };
}, ropeScalingObject);

/**
 * config.json of a `DeepseekV2ForCausalLM` checkpoint (also the `language_config` of DeepSeek-VL2 and
 * DeepSeek-OCR). Every key of `DeepseekV2Config` (deepseek-ai/DeepSeek-VL2
 * `configuration_deepseek.py`) is listed; defaults are the class defaults, except `topk_method`, whose
 * class default is the misspelt `'gready'` that DeepSeek's `MoEGate` does not handle (a config that
 * omits it routes greedily here). A key not listed is stripped and reported once by
 * {@link parseModelConfig} (see `warnUnknownConfigKeys`).
 */
export const deepseekV2ConfigSchema = z.object({
  // informational keys written by save_pretrained / the hub
  architectures: z.array(z.string()).optional(),
  model_type: z.string().optional(),
  transformers_version: z.string().optional(),
  torch_dtype: z.string().nullable().optional(),
  auto_map: z.record(z.string(), z.string()).optional(),
  _name_or_path: z.string().optional(),
  initializer_range: z.number().optional(),
  // attention kernel choice of transformers (eager/sdpa/flash): same math
  _attn_implementation: z.string().nullable().optional(),
  // training-only keys: no effect on inference
  aux_loss_alpha: z.number().optional(),
  seq_aux: z.boolean().optional(),
  attention_dropout: z.number().optional(),
  use_cache: z.boolean().optional(),
  // ep_size / pretraining_tp only split the same computation across devices / slices
  ep_size: posInt.optional(),
  pretraining_tp: posInt.optional(),
  // kwargs DeepseekV2Config stores and modeling_deepseek.py never reads: lm_head is always built,
  // no reward head exists (published VL2 configs carry lm_head: false)
  lm_head: z.boolean().optional(),
  rm_head: z.boolean().optional(),

  vocab_size: posInt.default(102400),
  hidden_size: posInt.default(4096),
  intermediate_size: posInt.default(11008),
  moe_intermediate_size: posInt.default(1407),
  num_hidden_layers: posInt.default(30),
  num_attention_heads: posInt.default(32),
  num_key_value_heads: posInt.nullable().default(32),
  n_shared_experts: nonNegInt.nullable().default(null),
  n_routed_experts: posInt.nullable().default(null),
  routed_scaling_factor: z.number().default(1.0),
  kv_lora_rank: posInt.nullable().default(512),
  q_lora_rank: posInt.nullable().default(1536),
  qk_rope_head_dim: nonNegInt.default(64),
  v_head_dim: nonNegInt.default(128),
  qk_nope_head_dim: nonNegInt.default(128),
  topk_method: z.enum(['greedy', 'group_limited_greedy', 'noaux_tc']).default('greedy'),
  n_group: posInt.nullable().default(null),
  topk_group: posInt.nullable().default(null),
  num_experts_per_tok: posInt.nullable().default(null),
  moe_layer_freq: posInt.default(1),
  first_k_dense_replace: nonNegInt.default(0),
  norm_topk_prob: z.boolean().default(false),
  scoring_func: z.enum(['softmax', 'sigmoid']).default('softmax'),
  hidden_act: z.literal('silu').default('silu'),
  max_position_embeddings: posInt.default(2048),
  rms_norm_eps: z.number().positive().default(1e-6),
  pad_token_id: tokenIds.default(null),
  bos_token_id: tokenIds.default(100000),
  eos_token_id: tokenIds.default(100001),
  tie_word_embeddings: z.boolean().default(false),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: ropeScalingSchema.nullable().default(null),
  attention_bias: z.boolean().default(false),
  use_mla: z.boolean().default(true),
  /** written by `kestrel quantize`: the checkpoint holds q8 weights (see docs/moe.md) */
  quantization_config: z.object({
    quant_method: z.literal('kestrel_q8'),
    block_size: z.literal(32),
  }).strict().optional(),
});

/** The raw (validated) config. */
export type DeepseekV2Config = z.output<typeof deepseekV2ConfigSchema>;

/** Which layers are MoE and how they route; attention geometry; everything the model needs. */
export interface ModelConfig {
  raw: DeepseekV2Config;
  vocab: number;
  hidden: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  eps: number;
  useMla: boolean;
  /** MHA head dim (hidden / heads) */
  headDim: number;
  qLoraRank: number | null;
  kvLoraRank: number;
  nope: number;
  rope: number;
  vHead: number;
  intermediate: number;
  moeIntermediate: number;
  nRouted: number;
  nShared: number;
  topK: number;
  nGroup: number;
  topkGroup: number;
  isMoeLayer: boolean[];
  bosId: number | null;
  eosIds: number[];
  tied: boolean;
  attentionBias: boolean;
  quantized: boolean;
}

function fail(msg: string): never {
  throw new KestrelError('E_CHECKPOINT_FORMAT', `config.json: ${msg}`);
}

function ids(v: number | number[] | null): number[] {
  return v === null ? [] : Array.isArray(v) ? v : [v];
}

/**
 * Validate a DeepSeek-V2 config object and derive the model geometry. Throws `E_CHECKPOINT_FORMAT`
 * naming the key for bad values or combinations Kestrel does not implement; a key Kestrel does not
 * know is a one-line process warning (once), not a refusal. `where` names the file in messages.
 */
export function parseModelConfig(json: unknown, where = 'config.json'): ModelConfig {
  warnUnknownConfigKeys(where, json, Object.keys(deepseekV2ConfigSchema.shape));
  const r = deepseekV2ConfigSchema.safeParse(json ?? {});
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
    throw new KestrelError('E_CHECKPOINT_FORMAT', `config.json is not a supported DeepSeek-V2 config: ${issues}`, { details: { issues: r.error.issues } });
  }
  const c = r.data;
  if (c.model_type !== undefined && c.model_type !== 'deepseek_v2') fail(`model_type "${c.model_type}" is not "deepseek_v2"`);
  if (c.architectures && !c.architectures.every((a) => a === 'DeepseekV2ForCausalLM')) {
    fail(`architectures ${JSON.stringify(c.architectures)}: only DeepseekV2ForCausalLM is supported`);
  }
  const nHeads = c.num_attention_heads;
  const nKvHeads = c.num_key_value_heads ?? nHeads;
  let headDim = 0;
  if (!c.use_mla) {
    if (c.hidden_size % nHeads !== 0) fail(`hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${nHeads}`);
    headDim = c.hidden_size / nHeads;
    if (headDim % 2 !== 0) fail(`head dim ${headDim} must be even for RoPE`);
    if (nHeads % nKvHeads !== 0) fail(`num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);
    if (c.rope_scaling && c.rope_scaling.type !== 'linear') fail(`rope_scaling type "${c.rope_scaling.type}" is not supported with use_mla=false (transformers' LlamaAttention only knows linear/dynamic)`);
  } else {
    if (c.kv_lora_rank === null) fail('use_mla=true needs kv_lora_rank');
    if (c.qk_rope_head_dim === 0 || c.qk_rope_head_dim % 2 !== 0) fail(`qk_rope_head_dim ${c.qk_rope_head_dim} must be a positive even number with use_mla=true`);
    if (c.v_head_dim === 0) fail('v_head_dim must be positive with use_mla=true');
  }
  const nRouted = c.n_routed_experts ?? 0;
  const isMoeLayer = Array.from({ length: c.num_hidden_layers }, (_, l) => nRouted > 0 && l >= c.first_k_dense_replace && l % c.moe_layer_freq === 0);
  const anyMoe = isMoeLayer.some(Boolean);
  const topK = c.num_experts_per_tok ?? 0;
  let nGroup = c.n_group ?? 1;
  let topkGroup = c.topk_group ?? 1;
  if (anyMoe) {
    if (topK < 1 || topK > nRouted) fail(`num_experts_per_tok ${c.num_experts_per_tok} must be in [1, n_routed_experts=${nRouted}]`);
    if (c.topk_method === 'greedy') { nGroup = 1; topkGroup = 1; } else {
      if (c.n_group === null || c.topk_group === null) fail(`topk_method "${c.topk_method}" needs n_group and topk_group`);
      if (nRouted % nGroup !== 0) fail(`n_routed_experts ${nRouted} is not a multiple of n_group ${nGroup}`);
      if (topkGroup > nGroup) fail(`topk_group ${topkGroup} exceeds n_group ${nGroup}`);
      if (topkGroup * (nRouted / nGroup) < topK) fail(`topk_group ${topkGroup} groups of ${nRouted / nGroup} experts cannot supply num_experts_per_tok ${topK}`);
    }
  }
  const eosIds = ids(c.eos_token_id);
  const bos = ids(c.bos_token_id);
  for (const t of [...eosIds, ...bos]) if (t >= c.vocab_size) fail(`special token id ${t} is outside vocab_size ${c.vocab_size}`);
  return {
    raw: c,
    vocab: c.vocab_size,
    hidden: c.hidden_size,
    nLayers: c.num_hidden_layers,
    nHeads,
    nKvHeads,
    eps: c.rms_norm_eps,
    useMla: c.use_mla,
    headDim,
    qLoraRank: c.q_lora_rank,
    kvLoraRank: c.kv_lora_rank ?? 0,
    nope: c.qk_nope_head_dim,
    rope: c.qk_rope_head_dim,
    vHead: c.v_head_dim,
    intermediate: c.intermediate_size,
    moeIntermediate: c.moe_intermediate_size,
    nRouted,
    nShared: c.n_shared_experts ?? 0,
    topK,
    nGroup,
    topkGroup,
    isMoeLayer,
    bosId: bos[0] ?? null,
    eosIds,
    tied: c.tie_word_embeddings,
    attentionBias: c.attention_bias,
    quantized: c.quantization_config !== undefined,
  };
}
