import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KestrelError } from '@kestrel/core';
import { parseModelConfig, languageTensorShapes } from '@kestrel/moe';
import { vl2TensorShapes, checkCheckpointTensors, type TensorCheckReport } from './checkpoint-tensors.js';

/** What {@link checkCheckpoint} found. */
export interface CheckpointCheck {
  dir: string;
  /** `deepseek-vl2` (config.json has `language_config`) or `deepseek-v2` (a text-only DeepseekV2ForCausalLM) */
  kind: 'deepseek-vl2' | 'deepseek-v2';
  /** parameters config.json describes */
  parameters: number;
  /** tensors config.json describes */
  tensors: number;
  /** the comparison with the safetensors headers (empty lists when they match) */
  report: TensorCheckReport;
}

/**
 * Check a checkpoint folder without reading any weight: parse its config.json as DeepSeek's code does
 * (unknown keys are warned about once, unsupported values are `E_CHECKPOINT_FORMAT`), then compare the
 * safetensors headers (single file or sharded index) with the tensor names and shapes the config
 * describes. Resolves with the report; throws `E_CHECKPOINT_FORMAT` naming the first mismatches.
 */
export async function checkCheckpoint(dir: string): Promise<CheckpointCheck> {
  let cfg: unknown;
  const path = join(dir, 'config.json');
  try {
    cfg = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new KestrelError(missing ? 'E_MODEL_NOT_FOUND' : 'E_CHECKPOINT_FORMAT', `${path}: ${missing ? 'no such file; is this a checkpoint folder?' : `not valid JSON (${(e as Error).message})`}`, { details: { path } });
  }
  const vl2 = cfg !== null && typeof cfg === 'object' && 'language_config' in cfg;
  const lm = parseModelConfig(vl2 ? (cfg as { language_config: unknown }).language_config : cfg, vl2 ? 'config.json language_config' : path);
  const shapes = vl2 ? vl2TensorShapes(cfg) : languageTensorShapes(lm);
  const report = await checkCheckpointTensors(dir, shapes, lm.quantized ? { q8Block: lm.raw.quantization_config!.block_size } : {});
  return { dir, kind: vl2 ? 'deepseek-vl2' : 'deepseek-v2', parameters: report.parameters, tensors: shapes.size, report };
}
