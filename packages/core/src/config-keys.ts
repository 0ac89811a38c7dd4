/**
 * Keys of published Hugging Face config files that Kestrel does not know. DeepSeek's checkpoints carry
 * keys their own code ignores (`lm_head`, `rm_head`, generation defaults, ...), so an unknown key is
 * reported, once per file section and key, instead of refusing the checkpoint; a key that changes the
 * computation is typed by the schema that reads it and refused there when Kestrel cannot honour it.
 */

/**
 * Keys every `PretrainedConfig.to_dict()` may write (identity, serialisation and `generate()`
 * defaults). None of them changes a forward pass, so they are accepted without a warning.
 */
export const PRETRAINED_CONFIG_KEYS: readonly string[] = [
  'architectures', 'model_type', 'transformers_version', 'torch_dtype', 'dtype', 'auto_map', '_name_or_path',
  '_commit_hash', '_attn_implementation', '_attn_implementation_autoset', 'return_dict', 'output_hidden_states',
  'output_attentions', 'torchscript', 'use_bfloat16', 'tf_legacy_loss', 'pruned_heads', 'tie_encoder_decoder',
  'is_decoder', 'is_encoder_decoder', 'chunk_size_feed_forward', 'add_cross_attention', 'cross_attention_hidden_size',
  'tokenizer_class', 'prefix', 'task_specific_params', 'problem_type', 'id2label', 'label2id', 'num_labels',
  'finetuning_task', 'max_length', 'min_length', 'do_sample', 'early_stopping', 'num_beams', 'num_beam_groups',
  'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p', 'repetition_penalty', 'length_penalty',
  'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences', 'output_scores',
  'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id', 'remove_invalid_values',
  'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'sep_token_id',
  'decoder_start_token_id', 'cache_implementation',
];

const warned = new Set<string>();

/**
 * Keys of `obj` that are neither in `known` nor generic `PretrainedConfig` keys. Each one is reported
 * once per process as a one-line `KESTREL_CONFIG_KEY` process warning naming `where` (e.g.
 * `config.json language_config`). Returns the unknown keys (also when already reported).
 */
export function warnUnknownConfigKeys(where: string, obj: unknown, known: Iterable<string>): string[] {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return [];
  const ok = new Set<string>([...known, ...PRETRAINED_CONFIG_KEYS]);
  const unknown = Object.keys(obj).filter((k) => !ok.has(k));
  for (const k of unknown) {
    const id = `${where}\u0000${k}`;
    if (warned.has(id)) continue;
    warned.add(id);
    process.emitWarning(`${where}: key "${k}" is not known to Kestrel and is ignored; if it changes the model, please report it`, { code: 'KESTREL_CONFIG_KEY' });
  }
  return unknown;
}
