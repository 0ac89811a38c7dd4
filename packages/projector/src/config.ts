import { z } from 'zod';
import { KestrelError, parseOptions, warnUnknownConfigKeys } from '@kestrel/core';

/** `projector_config` of a DeepSeek-VL2 checkpoint (`MlpProjectorConfig`). */
export const ProjectorConfigSchema = z
  .object({
    projector_type: z.enum(['identity', 'linear', 'mlp_gelu', 'downsample_mlp_gelu']).default('downsample_mlp_gelu'),
    // Defaults are DeepSeek-VL2's MlpProjectorConfig defaults.
    input_dim: z.number().int().positive().default(1152),
    n_embed: z.number().int().positive().default(2048),
    depth: z.number().int().positive().default(2),
    mlp_ratio: z.number().int().positive().default(1),
    downsample_ratio: z.number().int().positive().default(2),
    token_pooling: z.boolean().default(false),
  })
  .loose();

/** Parsed projector config. */
export type ProjectorConfig = z.output<typeof ProjectorConfigSchema>;

/** Validate a `projector_config` object (unknown keys are a one-time warning). */
export function parseProjectorConfig(raw: unknown): ProjectorConfig {
  warnUnknownConfigKeys('config.json projector_config', raw, Object.keys(ProjectorConfigSchema.shape));
  let cfg: ProjectorConfig;
  try {
    cfg = parseOptions(ProjectorConfigSchema, raw, 'projector_config');
  } catch (e) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', (e as Error).message, { cause: e });
  }
  if (cfg.token_pooling) {
    throw new KestrelError('E_UNSUPPORTED', 'projector_config.token_pooling=true is not supported (no DeepSeek-VL2 release uses it)');
  }
  return cfg;
}

/**
 * Tokens per side of one tile after the projector: ceil(grid / downsample_ratio) for the downsampling
 * projector (odd grids are zero-padded), the grid itself otherwise.
 */
export function projectedSide(cfg: Pick<ProjectorConfig, 'projector_type' | 'downsample_ratio'>, grid: number): number {
  return cfg.projector_type === 'downsample_mlp_gelu' ? Math.ceil(grid / cfg.downsample_ratio) : grid;
}
