import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { KestrelError, parseOptions, reportProgress, type ProgressListener } from '@kestrel/core';
import { loadCocoDataset } from '@kestrel/datasets';
import { COCO, evaluateCoco } from '@kestrel/eval';
import { writeFileAtomic, type CocoResultEntry } from '../detect/bench.js';
import { createPipeline, type GroundPipeline } from './ground.js';
import type { GroundingFlag } from './grounding-parse.js';

/** Options of {@link benchGround}. */
export const BenchGroundOptionsSchema = z.object({
  /** DeepSeek-VL2 checkpoint directory (with a tokenizer that has the grounding tokens) */
  model: z.string().min(1),
  /** COCO-format data set directory (images/ + annotations/instances_*.json) */
  data: z.string().min(1),
  annotations: z.string().optional(),
  /** where to write the COCO results JSON (atomically) */
  results: z.string().optional(),
  /** only the first N images (scored on those only) */
  limit: z.number().int().positive().optional(),
  /** only these category names (default: every category of the GT) */
  categories: z.array(z.string().min(1)).min(1).optional(),
  maxNewTokens: z.number().int().positive().default(64),
  frame: z.enum(['image', 'padded']).default('image'),
  backend: z.enum(['auto', 'portable', 'native']).default('auto'),
  threads: z.number().int().positive().optional(),
  dtype: z.enum(['f32', 'bf16', 'int8']).default('f32'),
}).strict();
export type BenchGroundOptions = z.input<typeof BenchGroundOptionsSchema> & { onProgress?: ProgressListener };

/** What {@link benchGround} measured. */
export interface BenchGroundResult {
  model: string;
  data: string;
  annotations: string;
  stats: number[];
  summary: string;
  images: number;
  categories: number;
  /** grounding queries run (images × categories) */
  queries: number;
  detections: number;
  /** how often each flag came up over all queries */
  flags: Partial<Record<GroundingFlag, number>>;
  ms_per_query: number;
  results?: string;
}

/**
 * Open-vocabulary COCO detection with a DeepSeek-VL2 model: for every image one grounding query per
 * category name (`<|ref|>name<|/ref|>`), boxes mapped back to pixels, scored with `evaluateCoco`
 * (the same results JSON `kestrel eval coco` reads). Boxes have score 1 (the model gives none), so
 * AP is that of an unranked detector.
 */
export async function benchGround(options: BenchGroundOptions): Promise<BenchGroundResult> {
  const { onProgress, ...rest } = options;
  const o = parseOptions(BenchGroundOptionsSchema, rest, 'ground bench options');
  const ds = await loadCocoDataset(o.data, o.annotations ? { annotations: o.annotations } : {});
  const images = o.limit ? ds.images.slice(0, o.limit) : ds.images;
  if (images.length === 0) throw new KestrelError('E_COCO_FORMAT', `${ds.annotationsPath} lists no images`);
  const gtJson = JSON.parse(await readFile(ds.annotationsPath, 'utf8')) as { categories?: Array<{ id: number; name: string }> };
  const gt = new COCO(gtJson, ds.annotationsPath);
  let cats = (gtJson.categories ?? []).map((c) => ({ id: c.id, name: c.name }));
  if (o.categories) {
    const unknown = o.categories.filter((n) => !cats.some((c) => c.name === n));
    if (unknown.length) throw new KestrelError('E_OPTIONS', `categories not in ${ds.annotationsPath}: ${unknown.join(', ')}`);
    cats = cats.filter((c) => o.categories!.includes(c.name));
  }
  if (cats.length === 0) throw new KestrelError('E_COCO_FORMAT', `${ds.annotationsPath} has no categories to query`);
  if (o.results && (await stat(o.results).catch(() => null))?.isDirectory()) {
    throw new KestrelError('E_OPTIONS', `--results ${o.results} is a directory; give a file name such as ${join(o.results, 'results.json')}`);
  }
  const ground: GroundPipeline = await createPipeline('ground', {
    model: o.model, backend: o.backend, dtype: o.dtype, maxNewTokens: o.maxNewTokens, frame: o.frame, ...(o.threads !== undefined ? { threads: o.threads } : {}),
  });
  const results: CocoResultEntry[] = [];
  const flags: Partial<Record<GroundingFlag, number>> = {};
  const t0 = performance.now();
  try {
    for (const [i, im] of images.entries()) {
      const r = await ground.detect(im.path, cats);
      for (const d of r.detections) {
        results.push({ image_id: im.id, category_id: d.categoryId, bbox: d.bbox.map((v) => Math.round(v * 100) / 100) as CocoResultEntry['bbox'], score: d.score });
      }
      for (const f of r.flags) flags[f] = (flags[f] ?? 0) + 1;
      reportProgress({ task: 'ground coco', done: i + 1, total: images.length }, onProgress);
    }
  } finally {
    ground.dispose();
  }
  const wall = performance.now() - t0;
  if (o.results) await writeFileAtomic(o.results, JSON.stringify(results));
  const scored = evaluateCoco({ gt, results, iouType: 'bbox', params: { imgIds: images.map((im) => im.id), catIds: cats.map((c) => c.id) } });
  const queries = images.length * cats.length;
  return {
    model: o.model, data: ds.dir, annotations: ds.annotationsPath, stats: scored.stats, summary: scored.summary,
    images: images.length, categories: cats.length, queries, detections: results.length, flags, ms_per_query: wall / queries,
    ...(o.results ? { results: resolve(o.results) } : {}),
  };
}
