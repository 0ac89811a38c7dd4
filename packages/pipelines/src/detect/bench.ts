import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { KestrelError, parseOptions, reportProgress, writeFileAtomic, type ProgressListener } from '@kestrel/core';
import { loadCocoDataset } from '@kestrel/datasets';
import { COCO, evaluateCoco } from '@kestrel/eval';
import { createPipeline, type DetectPipeline, type SegmentPipeline, type Detection, type Segmentation } from './index.js';

/** Options of {@link benchCoco}. */
export const BenchCocoOptionsSchema = z.object({
  /** Model name or path (see `pipeline('detect')`). */
  model: z.string().min(1),
  /** COCO-format data set directory (images/ + annotations/instances_*.json). */
  data: z.string().min(1),
  /** Explicit instances JSON (default: the first annotations/instances_*.json). */
  annotations: z.string().optional(),
  /** Where to write the COCO results JSON (written atomically). */
  results: z.string().optional(),
  /** `bbox` for detectors; `segm` scores masks (segment models). */
  iouType: z.enum(['bbox', 'segm']).default('bbox'),
  backend: z.enum(['wasm', 'cpu', 'node']).default('wasm'),
  executionProvider: z.enum(['cpu', 'cuda', 'cann']).default('cpu'),
  /** Only the first N images (scored on those images only). */
  limit: z.number().int().positive().optional(),
  /** Low by default: mAP integrates over the whole precision/recall curve. */
  scoreThreshold: z.number().min(0).max(1).default(0.001),
  maxDetections: z.number().int().positive().default(100),
  iou: z.number().min(0).max(1).optional(),
  home: z.string().optional(),
}).strict();
export type BenchCocoOptions = z.input<typeof BenchCocoOptionsSchema> & { onProgress?: ProgressListener };

/** COCO results JSON entry (what pycocotools' `loadRes` reads). */
export interface CocoResultEntry {
  image_id: number;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
  segmentation?: { size: [number, number]; counts: string };
}

/** What {@link benchCoco} measured. */
export interface BenchCocoResult {
  model: string;
  runtime: string;
  data: string;
  annotations: string;
  iouType: 'bbox' | 'segm';
  /** The 12 COCOeval summary numbers (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl). */
  stats: number[];
  /** pycocotools-style summary text. */
  summary: string;
  images: number;
  detections: number;
  /** Wall time per image, decode to results, excluding model load and scoring. */
  msPerImage: number;
  /** Per-image averages by stage. */
  preMs: number;
  modelMs: number;
  postMs: number;
  /** Model load time. */
  loadMs: number;
  /** @deprecated alias of msPerImage (snake_case outputs are kept for one release; docs/core.md) */
  ms_per_image: number;
  /** @deprecated alias of preMs */
  pre_ms: number;
  /** @deprecated alias of modelMs */
  model_ms: number;
  /** @deprecated alias of postMs */
  post_ms: number;
  /** @deprecated alias of loadMs */
  load_ms: number;
  results?: string;
}

/** Atomic write (moved to @kestrel/core; re-exported here for the existing import path). */
export { writeFileAtomic };

/**
 * Run a detector over a COCO-format data set, write the COCO results JSON and score it with
 * @kestrel/eval's COCOeval (pycocotools semantics).
 */
export async function benchCoco(options: BenchCocoOptions): Promise<BenchCocoResult> {
  const { onProgress, ...rest } = options;
  const o = parseOptions(BenchCocoOptionsSchema, rest, 'bench coco options');
  const ds = await loadCocoDataset(o.data, o.annotations ? { annotations: o.annotations } : {});
  const images = o.limit ? ds.images.slice(0, o.limit) : ds.images;
  if (images.length === 0) throw new KestrelError('E_COCO_FORMAT', `${ds.annotationsPath} lists no images`);
  // Validate the GT and the --results target before running the detector, so bad input fails in
  // milliseconds instead of after the whole data set (and without leaving a results file behind).
  const gt = new COCO(JSON.parse(await readFile(ds.annotationsPath, 'utf8')) as unknown, ds.annotationsPath);
  if (o.results && (await stat(o.results).catch(() => null))?.isDirectory()) {
    throw new KestrelError('E_OPTIONS', `--results ${o.results} is a directory; give a file name such as ${join(o.results, 'results.json')}`);
  }
  if (o.results) {
    // Nor can it go under a file (the folders are created only when writing, after the run).
    let up = dirname(resolve(o.results));
    while (!(await stat(up).catch(() => null)) && dirname(up) !== up) up = dirname(up);
    if ((await stat(up).catch(() => null))?.isDirectory() === false) throw new KestrelError('E_IO', `cannot write ${o.results}: ${up} is a file`);
  }
  const task = o.iouType === 'segm' ? 'segment' : 'detect';
  const tl = performance.now();
  const pipe = (await createPipeline(task, {
    model: o.model, scoreThreshold: o.scoreThreshold, maxDetections: o.maxDetections, backend: o.backend,
    executionProvider: o.executionProvider, ...(o.iou !== undefined ? { iou: o.iou } : {}), ...(o.home !== undefined ? { home: o.home } : {}),
  })) as DetectPipeline | SegmentPipeline;
  const loadMs = performance.now() - tl;
  const results: CocoResultEntry[] = [];
  const t0 = performance.now();
  try {
    for (const [i, im] of images.entries()) {
      const [dets] = (await pipe(im.path)) as Array<Detection[] | Segmentation[]>;
      for (const d of dets!) {
        const r: CocoResultEntry = { image_id: im.id, category_id: d.categoryId, bbox: d.bbox.map((v) => Math.round(v * 100) / 100) as CocoResultEntry['bbox'], score: Math.round(d.score * 1e5) / 1e5 };
        if ('mask' in d) r.segmentation = d.mask;
        results.push(r);
      }
      reportProgress({ task: `bench coco ${pipe.model.name}`, done: i + 1, total: images.length }, onProgress);
    }
  } finally {
    await pipe.dispose();
  }
  const wall = performance.now() - t0;
  const tm = pipe.timings();
  if (o.results) await writeFileAtomic(o.results, JSON.stringify(results));
  const scored = evaluateCoco({
    gt, results, iouType: o.iouType,
    ...(o.limit ? { params: { imgIds: images.map((im) => im.id) } } : {}),
  });
  const n = images.length;
  return {
    model: pipe.model.name, runtime: pipe.runtime, data: ds.dir, annotations: ds.annotationsPath, iouType: o.iouType,
    stats: scored.stats, summary: scored.summary, images: n, detections: results.length,
    msPerImage: wall / n, preMs: tm.preMs / n, modelMs: tm.modelMs / n, postMs: tm.postMs / n, loadMs,
    ms_per_image: wall / n, pre_ms: tm.preMs / n, model_ms: tm.modelMs / n, post_ms: tm.postMs / n, load_ms: loadMs,
    ...(o.results ? { results: resolve(o.results) } : {}),
  };
}
