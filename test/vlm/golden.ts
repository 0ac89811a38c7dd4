// Helpers for the DeepSeek-VL2 golden cases in test/fixtures/vlm (copied from ../shared/golden/vlm).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { readAllSafetensors, type Tensor } from '@kestrel/core';

export const FIXTURES = fileURLToPath(new URL('../fixtures/vlm/', import.meta.url));
export const MODELS = ['A', 'B', 'C'] as const;
export const CASES = ['case_img0', 'case_img1', 'case_multi'] as const;

export interface CaseInfo {
  input_ids: number[];
  image_files: string[];
  decode_token_ids: number[];
  images: { image_size_wh: [number, number]; best_resolution_wh: [number, number]; images_spatial_crop: [number, number]; num_tiles: number; num_image_tokens: number; token_span: [number, number] }[];
}

export interface GoldenCase {
  dir: string;
  info: CaseInfo;
  t: Map<string, Tensor>;
  get(name: string): Tensor;
}

export async function loadCase(model: string, c: string): Promise<GoldenCase> {
  const dir = join(FIXTURES, model);
  const info = JSON.parse(await readFile(join(dir, `${c}.json`), 'utf8')) as CaseInfo;
  const t = await readAllSafetensors(join(dir, `${c}.safetensors`));
  return {
    dir, info, t,
    get(name: string): Tensor {
      const x = t.get(name);
      if (!x) throw new Error(`golden tensor ${name} missing in ${model}/${c}`);
      return x;
    },
  };
}

/** max |a - b| over all elements; throws when sizes differ. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
