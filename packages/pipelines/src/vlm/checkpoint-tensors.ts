import { KestrelError, openSafetensors } from '@kestrel/core';
import { parseVisionConfig, patchGrid, visionMlpHidden, type VisionConfig } from '@kestrel/vit';
import { parseProjectorConfig, type ProjectorConfig } from '@kestrel/projector';
import { parseModelConfig, languageTensorShapes } from '@kestrel/moe';
import { parseVl2Config } from './vl2-config.js';

/**
 * Names and shapes of the `vision.*` tensors: DeepSeek's `siglip_vit.VisionTransformer` (timm layout,
 * no class token) with its `attn_pool` head, which is in the checkpoint whenever `global_pool` is
 * "map" even though `ignore_head` keeps it out of the computation.
 */
export function visionTensorShapes(v: VisionConfig & { global_pool?: unknown }, prefix = 'vision.'): Map<string, number[]> {
  const S = new Map<string, number[]>();
  const D = v.width;
  const M = visionMlpHidden(v);
  const g = patchGrid(v);
  const ln = (n: string): void => { S.set(`${n}.weight`, [D]); S.set(`${n}.bias`, [D]); };
  const lin = (n: string, out: number, inp: number): void => { S.set(`${n}.weight`, [out, inp]); S.set(`${n}.bias`, [out]); };
  S.set(`${prefix}pos_embed`, [1, g * g, D]);
  S.set(`${prefix}patch_embed.proj.weight`, [D, 3, v.patch_size, v.patch_size]);
  S.set(`${prefix}patch_embed.proj.bias`, [D]);
  for (let i = 0; i < v.layers; i++) {
    const b = `${prefix}blocks.${i}.`;
    ln(`${b}norm1`);
    lin(`${b}attn.qkv`, 3 * D, D);
    lin(`${b}attn.proj`, D, D);
    ln(`${b}norm2`);
    lin(`${b}mlp.fc1`, M, D);
    lin(`${b}mlp.fc2`, D, M);
  }
  ln(`${prefix}norm`);
  if ((v.global_pool ?? 'map') === 'map') {
    const a = `${prefix}attn_pool.`;
    S.set(`${a}latent`, [1, 1, D]);
    lin(`${a}q`, D, D);
    lin(`${a}kv`, 2 * D, D);
    lin(`${a}proj`, D, D);
    ln(`${a}norm`);
    lin(`${a}mlp.fc1`, M, D);
    lin(`${a}mlp.fc2`, D, M);
  }
  return S;
}

/** Names and shapes of the `projector.*` tensors, as DeepSeek's `MlpProjector` builds its `layers`. */
export function projectorTensorShapes(p: ProjectorConfig, prefix = 'projector.'): Map<string, number[]> {
  const S = new Map<string, number[]>();
  const lin = (i: number | null, out: number, inp: number): void => {
    const n = i === null ? `${prefix}layers` : `${prefix}layers.${i}`;
    S.set(`${n}.weight`, [out, inp]);
    S.set(`${n}.bias`, [out]);
  };
  const E = p.n_embed;
  if (p.projector_type === 'linear') lin(null, E, p.input_dim);
  else if (p.projector_type === 'mlp_gelu') for (let i = 0; i < p.depth; i++) lin(2 * i, E, i === 0 ? p.input_dim : E);
  else if (p.projector_type === 'downsample_mlp_gelu') {
    const r = p.downsample_ratio;
    const hid = E * p.mlp_ratio;
    lin(0, hid, p.input_dim * r * r);
    // nn.Sequential(Linear, [GELU, Linear] * (depth - 2), GELU, Linear): at least two linears
    const n = Math.max(2, p.depth);
    for (let i = 1; i < n; i++) lin(2 * i, i === n - 1 ? E : hid, hid);
  }
  return S;
}

/**
 * Every tensor of a DeepSeek-VL2 checkpoint with its shape, from its config.json object: the vision
 * tower, the projector, `image_newline` / `view_seperator` (the checkpoint's spelling) and the language
 * model under `language.`.
 */
export function vl2TensorShapes(configJson: unknown): Map<string, number[]> {
  const cfg = parseVl2Config(configJson);
  const vision = parseVisionConfig(cfg.vision_config);
  const projector = parseProjectorConfig(cfg.projector_config);
  const language = parseModelConfig(cfg.language_config, 'config.json language_config');
  const S = new Map<string, number[]>([
    ...visionTensorShapes({ ...vision, global_pool: (cfg.vision_config as { global_pool?: unknown }).global_pool }),
    ...projectorTensorShapes(projector),
    ['image_newline', [projector.n_embed]],
    ['view_seperator', [projector.n_embed]],
    ...languageTensorShapes(language, 'language.'),
  ]);
  return S;
}

/** What {@link checkCheckpointTensors} found. */
export interface TensorCheckReport {
  /** tensors the config needs and the checkpoint lacks */
  missing: string[];
  /** tensors in the checkpoint the config does not describe */
  unexpected: string[];
  /** tensors whose shape differs: name, expected shape, stored shape */
  mismatched: Array<{ name: string; expected: number[]; actual: number[] }>;
  /** tensors checked */
  checked: number;
  /** parameters the config describes */
  parameters: number;
}

/** Sum of the element counts of a shape table. */
export function countParameters(shapes: ReadonlyMap<string, readonly number[]>): number {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Compare a checkpoint's tensor names and shapes (safetensors headers only, no weight is read) with
 * what its config describes. `expected` is e.g. {@link vl2TensorShapes}; with `q8Block` (a `kestrel
 * quantize` checkpoint) the `_scale` companions are ignored and I8 matrices may have their rows padded
 * to a multiple of the block. With `throwOnMismatch` (default) any difference is
 * `E_CHECKPOINT_FORMAT` naming the first few tensors.
 */
export async function checkCheckpointTensors(path: string, expected: ReadonlyMap<string, readonly number[]>, options: { throwOnMismatch?: boolean; q8Block?: number } = {}): Promise<TensorCheckReport> {
  const B = options.q8Block;
  // a `kestrel quantize` matrix [n, k] is stored as I8 [n, ceil(k / block) * block]
  const same = (want: readonly number[], got: readonly number[], dtype: string): boolean =>
    got.length === want.length && got.every((d, i) => d === want[i] || (B !== undefined && dtype === 'i8' && got.length === 2 && i === 1 && d === Math.ceil(want[1]! / B) * B));
  const file = await openSafetensors(path);
  let report: TensorCheckReport;
  try {
    const names = file.names().filter((n) => B === undefined || !n.endsWith('_scale') || expected.has(n));
    const have = new Set(names);
    const mismatched: TensorCheckReport['mismatched'] = [];
    for (const n of names) {
      const want = expected.get(n);
      if (!want) continue;
      const { shape: got, dtype } = file.info(n);
      if (!same(want, got, dtype)) mismatched.push({ name: n, expected: [...want], actual: got });
    }
    report = {
      missing: [...expected.keys()].filter((n) => !have.has(n)),
      unexpected: names.filter((n) => !expected.has(n)),
      mismatched,
      checked: names.length,
      parameters: countParameters(expected),
    };
  } finally {
    await file.close();
  }
  if ((options.throwOnMismatch ?? true) && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
    const few = (xs: string[]): string => xs.slice(0, 3).join(', ') + (xs.length > 3 ? `, … (${xs.length} in all)` : '');
    const parts = [
      report.missing.length ? `missing ${few(report.missing)}` : '',
      report.unexpected.length ? `not described by config.json: ${few(report.unexpected)}` : '',
      report.mismatched.length ? `wrong shape: ${few(report.mismatched.map((m) => `${m.name} [${m.actual.join(', ')}] (config says [${m.expected.join(', ')}])`))}` : '',
    ].filter(Boolean);
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${path}: the weights do not match config.json (${parts.join('; ')}). Check that config.json belongs to these weights.`, { details: { ...report } });
  }
  return report;
}
