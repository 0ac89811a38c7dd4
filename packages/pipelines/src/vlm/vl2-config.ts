import { KestrelError, warnUnknownConfigKeys } from '@kestrel/core';

/** The top level of a DeepSeek-VL2 config.json (`DeepseekVLV2Config`); the three parts are parsed by their packages. */
export interface Vl2Config {
  vision_config: Record<string, unknown>;
  projector_config: Record<string, unknown>;
  language_config: Record<string, unknown>;
  tile_tag?: unknown;
  global_view_pos?: unknown;
  candidate_resolutions?: unknown;
  [key: string]: unknown;
}

/** Keys `DeepseekVLV2Config` reads (the generic `PretrainedConfig` keys are accepted too). */
const VL2_KEYS = ['vision_config', 'projector_config', 'language_config', 'tile_tag', 'global_view_pos', 'candidate_resolutions'];

/**
 * Check the top level of a DeepSeek-VL2 config.json: the three sub-configs are objects, `architectures`
 * (when present) is `DeepseekVLV2ForCausalLM`, and keys Kestrel does not know are reported once
 * (a warning, not a refusal). `E_CHECKPOINT_FORMAT` / `E_UNSUPPORTED` otherwise, naming the key.
 */
export function parseVl2Config(json: unknown, where = 'config.json'): Vl2Config {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new KestrelError('E_CHECKPOINT_FORMAT', `${where} is not a JSON object`);
  const cfg = json as Vl2Config;
  for (const k of ['vision_config', 'projector_config', 'language_config'] as const) {
    if (typeof cfg[k] !== 'object' || cfg[k] === null || Array.isArray(cfg[k])) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${where} has no "${k}" object; is this a DeepSeek-VL2 checkpoint?`);
    }
  }
  const arch = cfg.architectures;
  if (arch !== undefined && !(Array.isArray(arch) && arch.every((a) => a === 'DeepseekVLV2ForCausalLM'))) {
    throw new KestrelError('E_UNSUPPORTED', `${where}: architectures ${JSON.stringify(arch)} is not DeepseekVLV2ForCausalLM; Kestrel runs DeepSeek-VL2 checkpoints (for a text-only DeepSeek-V2 checkpoint use @kestrel/moe)`);
  }
  if (cfg.model_type !== undefined && cfg.model_type !== 'deepseek_vl_v2') {
    throw new KestrelError('E_UNSUPPORTED', `${where}: model_type "${String(cfg.model_type)}" is not "deepseek_vl_v2"`);
  }
  warnUnknownConfigKeys(where, cfg, VL2_KEYS);
  return cfg;
}
