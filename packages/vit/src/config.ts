import { z } from 'zod';
import { KestrelError, parseOptions, warnUnknownConfigKeys } from '@kestrel/core';

/**
 * `vision_config` of a DeepSeek-VL2 checkpoint (timm SigLIP ViT). Only the keys that change the
 * computation are typed; the rest (model_name, global_pool, weight_init, ...) pass through.
 */
export const VisionConfigSchema = z
  .object({
    // Defaults are DeepSeek-VL2's VisionEncoderConfig defaults (a config saved with to_diff_dict omits them).
    image_size: z.number().int().positive().default(384),
    patch_size: z.number().int().positive().default(16),
    width: z.number().int().positive().default(1024),
    layers: z.number().int().nonnegative().default(24),
    heads: z.number().int().positive().default(16),
    mlp_ratio: z.number().positive().default(4),
    class_token: z.boolean().default(false),
    ignore_head: z.boolean().default(true),
    /** LayerNorm epsilon; timm's SigLIP uses 1e-6 and the VL2 config has no key for it. */
    layer_norm_eps: z.number().positive().default(1e-6),
  })
  .loose();

/** Parsed vision config. */
export type VisionConfig = z.output<typeof VisionConfigSchema>;

/**
 * Keys of DeepSeek-VL2's `VisionEncoderConfig` that do not change inference: the tower is built from
 * the explicit fields (`model_name` is a label), `global_pool`/`num_classes` only shape the unused
 * head, the rest are training switches.
 */
const INERT_VISION_KEYS = ['model_name', 'global_pool', 'num_classes', 'use_checkpoint', 'weight_init', 'deterministic', 'num_recomputing_layers', 'select_layer'];

/** Validate a `vision_config` object (E_CHECKPOINT_FORMAT when it is unusable; unknown keys are a one-time warning). */
export function parseVisionConfig(raw: unknown): VisionConfig {
  warnUnknownConfigKeys('config.json vision_config', raw, [...Object.keys(VisionConfigSchema.shape), ...INERT_VISION_KEYS]);
  let cfg: VisionConfig;
  try {
    cfg = parseOptions(VisionConfigSchema, raw, 'vision_config');
  } catch (e) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', (e as Error).message, { cause: e });
  }
  if (cfg.width % cfg.heads !== 0) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `vision_config: width ${cfg.width} is not a multiple of heads ${cfg.heads}`);
  }
  if (cfg.class_token) {
    throw new KestrelError('E_UNSUPPORTED', 'vision_config.class_token=true is not supported (DeepSeek-VL2 uses no class token)');
  }
  if (!cfg.ignore_head) {
    throw new KestrelError('E_UNSUPPORTED', 'vision_config.ignore_head=false is not supported (DeepSeek-VL2 feeds the patch sequence to the projector)');
  }
  if (cfg.patch_size > cfg.image_size) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `vision_config: patch_size ${cfg.patch_size} exceeds image_size ${cfg.image_size}`);
  }
  return cfg;
}

/** Patches per side: a stride-P convolution over S pixels keeps floor(S/P) (SigLIP-384/14 -> 27). */
export function patchGrid(cfg: Pick<VisionConfig, 'image_size' | 'patch_size'>): number {
  return Math.floor(cfg.image_size / cfg.patch_size);
}

/** Hidden size of the ViT MLP: timm uses int(width * mlp_ratio) (3.7362 -> 4304 for SigLIP-so400m). */
export function visionMlpHidden(cfg: Pick<VisionConfig, 'width' | 'mlp_ratio'>): number {
  return Math.trunc(cfg.width * cfg.mlp_ratio);
}
