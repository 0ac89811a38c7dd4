/**
 * The published DeepSeek-VL2 model shapes that `kestrel bench vlm --preset` writes as random-weight checkpoints:
 * the one source of truth for each preset's config.json and processor_config.json. Values are DeepSeek's published
 * ones (Hugging Face deepseek-ai/deepseek-vl2-tiny and -small, as loaded by DeepSeek's DeepseekVLV2Config /
 * DeepseekV2Config); keys the published files leave to those classes' defaults are left out here too. DeepSeek
 * gives tiny 3,370,501,440 parameters and small "16.1 B"; the test checks the writer's tensor list against both.
 */

/** Names of the presets. */
export const PRESET_NAMES = ['deepseek-vl2-tiny', 'deepseek-vl2-small'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** One preset: what the checkpoint's JSON files hold and how many parameters its tensors must add up to. */
export interface PresetSpec {
  config: Record<string, unknown>;
  processorConfig: Record<string, unknown>;
  /** total parameters DeepSeek gives for the published checkpoint (small: rounded to 0.1 B) */
  parameters: number;
  /** how exact `parameters` is (0 = exact) */
  parametersTolerance: number;
}

/** DeepSeek-VL2's candidate tile layouts (up to 9 tiles of 384 px), as published for all three models. */
const CANDIDATES: Array<[number, number]> = [
  [384, 384], [384, 768], [768, 384], [384, 1152], [1152, 384], [384, 1536], [1536, 384], [768, 768], [384, 1920],
  [1920, 384], [384, 2304], [2304, 384], [768, 1152], [1152, 768], [384, 2688], [2688, 384], [384, 3072], [3072, 384],
  [768, 1536], [1536, 768], [384, 3456], [3456, 384], [1152, 1152],
];

const VISION = { layers: 27, mlp_ratio: 3.7362, model_name: 'siglip_so400m_patch14_384', model_type: 'vision', patch_size: 14, width: 1152 };

/** `auto_map` of the published language configs (DeepSeek's remote-code classes; no effect on the computation). */
const AUTO_MAP = {
  AutoConfig: 'configuration_deepseek.DeepseekV2Config',
  AutoModel: 'modeling_deepseek.DeepseekV2Model',
  AutoModelForCausalLM: 'modeling_deepseek.DeepseekV2ForCausalLM',
};

function vl2(language: Record<string, unknown>, nEmbed: number): Record<string, unknown> {
  return {
    candidate_resolutions: CANDIDATES,
    global_view_pos: 'head',
    language_config: language,
    model_type: 'deepseek_vl_v2',
    projector_config: { model_type: 'mlp_projector', n_embed: nEmbed },
    tile_tag: '2D',
    torch_dtype: 'bfloat16',
    transformers_version: '4.38.2',
    vision_config: VISION,
  };
}

const PROCESSOR = {
  add_special_token: false, candidate_resolutions: CANDIDATES, downsample_ratio: 2, ignore_id: -100,
  image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], image_token: '<image>', mask_prompt: false, normalize: true,
  pad_token: '<｜▁pad▁｜>', patch_size: 14, processor_class: 'DeepseekVLV2Processor', sft_format: 'deepseek',
};

/** The presets by name. */
export const PRESETS: Readonly<Record<PresetName, PresetSpec>> = {
  'deepseek-vl2-tiny': {
    parameters: 3_370_501_440,
    parametersTolerance: 0,
    processorConfig: PROCESSOR,
    config: vl2({
      architectures: ['DeepseekV2ForCausalLM'], auto_map: AUTO_MAP, bos_token_id: 0, eos_token_id: 1, first_k_dense_replace: 1, hidden_size: 1280,
      intermediate_size: 6848, kv_lora_rank: null, lm_head: true, max_position_embeddings: 4096, model_type: 'deepseek_v2', moe_intermediate_size: 896,
      n_group: 1, n_routed_experts: 64, n_shared_experts: 2, num_attention_heads: 10, num_experts_per_tok: 6, num_hidden_layers: 12,
      num_key_value_heads: 10, q_lora_rank: null, qk_nope_head_dim: 0, qk_rope_head_dim: 0, rm_head: false, topk_group: 1, topk_method: 'greedy',
      torch_dtype: 'bfloat16', use_mla: false, v_head_dim: 0, vocab_size: 129280,
    }, 1280),
  },
  'deepseek-vl2-small': {
    parameters: 16_100_000_000,
    parametersTolerance: 50_000_000,
    processorConfig: PROCESSOR,
    config: vl2({
      // The hub file also has "lm_head": false, which this branch's config parser still refuses (ckpt's fix accepts it).
      architectures: ['DeepseekV2ForCausalLM'], auto_map: AUTO_MAP, bos_token_id: 0, eos_token_id: 1, first_k_dense_replace: 1, hidden_size: 2048,
      intermediate_size: 10944, kv_lora_rank: 512, max_position_embeddings: 4096, model_type: 'deepseek_v2', moe_intermediate_size: 1408,
      n_group: 1, n_routed_experts: 64, n_shared_experts: 2, num_attention_heads: 16, num_experts_per_tok: 6, num_hidden_layers: 27,
      num_key_value_heads: 16, q_lora_rank: null, qk_nope_head_dim: 128, qk_rope_head_dim: 64, rm_head: false, topk_group: 1, topk_method: 'greedy',
      torch_dtype: 'bfloat16', v_head_dim: 128, vocab_size: 102400,
    }, 2048),
  },
};
