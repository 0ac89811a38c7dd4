/**
 * The `defects` pipeline (industrial QC): a supervised defective/functional classifier, or a
 * PatchCore-style anomaly model trained on defect-free images only, each with a threshold calibrated
 * for a target false-positive rate and stored with the model.
 */
import { writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { KestrelError, parseOptions, reportProgress, type ProgressListener } from '@kestrel/core';
import { readLabelledImages, listImageFiles, type LabelledImage, type LabelsLayout } from '@kestrel/datasets';
import { CENTERNET_STAGES, POOL_STATS } from '../training/backbone.js';
import { classifierFromFiles, saveClassifier, trainClassifier, type ClassifierMeta } from '../training/classifier.js';
import { binaryBenchReport, type BinaryBenchReport } from '../training/report.js';
import { stratifiedSplit } from '../training/split.js';
import type { ImageInput } from '../training/image-input.js';
import { checkQcModelOut } from '../training/model-dir.js';
import { loadAnomalyModel, readAnyQcModel, saveAnomalyModel, trainAnomalyModel, type AnomalyMeta } from './anomaly.js';

export { AnomalyMetaSchema, type AnomalyMeta } from './anomaly.js';

const progressFn = z.custom<ProgressListener>((v) => typeof v === 'function');

/** Options of `pipeline('defects', ...)`. */
export const DefectsOptionsSchema = z.object({
  /** Model folder or shipped name (`defects-elpv`, `anomaly-magnetic-tile`). */
  model: z.string().min(1).default('defects-elpv'),
  /** Return the patch score map of anomaly models. */
  heatmap: z.boolean().default(true),
  onProgress: progressFn.optional(),
});
export type DefectsOptions = z.input<typeof DefectsOptionsSchema>;

/** One QC verdict. */
export interface DefectsResult {
  /** score ≥ threshold. */
  defective: boolean;
  /** Classifier: probability of a defect. Anomaly model: distance of the most unusual patch to normal patches. */
  score: number;
  /** The model's calibrated threshold. */
  threshold: number;
  /** Anomaly models: patch scores on the feature grid (row-major), higher = less like the good images. */
  heatmap?: { width: number; height: number; data: Float32Array };
}

/** Inspect one image, or a list (results in input order). */
export interface DefectsPipeline {
  (image: ImageInput): Promise<DefectsResult>;
  (images: readonly ImageInput[]): Promise<DefectsResult[]>;
  /** The loaded model's description. */
  readonly model: ClassifierMeta | AnomalyMeta;
  /** Stop the model's worker threads (nothing to release in process). */
  dispose(): Promise<void>;
}

declare module '../registry.js' {
  interface PipelineTasks {
    defects: { options: DefectsOptions; fn: DefectsPipeline };
  }
}

/** A loaded defects model of either kind, as one scoring function. */
interface DefectsScorer {
  dir: string;
  meta: ClassifierMeta | AnomalyMeta;
  score(input: ImageInput): Promise<{ score: number; heatmap?: DefectsResult['heatmap'] }>;
}

async function loadDefectsScorer(model: string, onProgress?: ProgressListener): Promise<DefectsScorer> {
  const { dir, raw, tensors } = await readAnyQcModel(model);
  if (raw.kind === 'anomaly') {
    const m = await loadAnomalyModel(dir, raw, tensors, onProgress);
    return { dir, meta: m.meta, score: (x) => m.score(x) };
  }
  const c = await classifierFromFiles(dir, raw, tensors, 'defects', onProgress);
  return { dir, meta: c.meta, score: async (x) => ({ score: await c.probability(x) }) };
}

/** Registry entry point. */
export async function createPipeline(task: string, options: unknown): Promise<DefectsPipeline> {
  if (task !== 'defects') throw new KestrelError('E_OPTIONS', `the defects module has no task "${task}"`);
  const o = parseOptions(DefectsOptionsSchema, options, 'defects options');
  const s = await loadDefectsScorer(o.model, o.onProgress);
  const one = async (img: ImageInput): Promise<DefectsResult> => {
    const r = await s.score(img);
    return { defective: r.score >= s.meta.threshold, score: r.score, threshold: s.meta.threshold, ...(o.heatmap && r.heatmap ? { heatmap: r.heatmap } : {}) };
  };
  const fn = (async (input: ImageInput | readonly ImageInput[]) => {
    if (Array.isArray(input)) {
      const out: DefectsResult[] = [];
      for (const x of input as readonly ImageInput[]) out.push(await one(x));
      return out;
    }
    return one(input as ImageInput);
  }) as DefectsPipeline;
  Object.defineProperty(fn, 'model', { value: s.meta, enumerable: true });
  return fn;
}

/** Write the held-out rows (paths relative to the data folder) so `bench --files` can score exactly them. */
async function writeHoldout(tmpList: string[], dataDir: string): Promise<string> {
  return tmpList.map((f) => relative(resolve(dataDir), f).split('\\').join('/')).join('\n') + '\n';
}

/** Options of {@link trainDefects}. */
export const TrainDefectsOptionsSchema = z.object({
  /** Labelled folder (ELPV or magnetic-tile labels.csv layout). */
  data: z.string().min(1),
  out: z.string().min(1),
  /** Share of the images held out from all training and selection, listed in the model's holdout.txt. */
  holdout: z.number().min(0).lt(1).default(0.2),
  /** Share of the remaining images used to choose the penalty and threshold. */
  calibrationFraction: z.number().gt(0).lt(1).default(0.25),
  seed: z.number().int().default(20261129),
  /** Threshold for this FPR on the calibration split (default: 0.5 on the class-balanced head). */
  targetFpr: z.number().min(0).max(1).optional(),
  size: z.number().int().min(32).max(1024).default(224),
  /** Backbone stages pooled (output strides). */
  stages: z.array(z.enum(['s4', 's8', 's16', 's32'])).min(1).default(['s8', 's16', 's32']),
  /** Per-channel statistics of each stage. */
  pooling: z.array(z.enum(POOL_STATS)).min(1).default(['mean', 'max']),
  l2Grid: z.array(z.number().positive()).min(1).default([0.01, 0.1, 0.3, 1]),
  /** Head on the pooled features. */
  head: z.enum(['logistic', 'mlp']).default('logistic'),
  steps: z.number().int().positive().default(300),
  command: z.string().optional(),
  onProgress: progressFn.optional(),
});
export type TrainDefectsOptions = z.input<typeof TrainDefectsOptionsSchema>;

function holdoutSplit(items: LabelledImage[], fraction: number, seed: number): { train: LabelledImage[]; held: LabelledImage[] } {
  if (fraction === 0) return { train: items, held: [] };
  const [a, b] = stratifiedSplit(items.map((i) => i.stratum), [1 - fraction, fraction], seed ^ 0x5eed) as [number[], number[]];
  return { train: a.map((i) => items[i]!), held: b.map((i) => items[i]!) };
}

/** Train a supervised defective/functional classifier; writes the model and its holdout list. */
export async function trainDefects(options: TrainDefectsOptions): Promise<{ dir: string; meta: ClassifierMeta; layout: LabelsLayout; holdout: number }> {
  const o = parseOptions(TrainDefectsOptionsSchema, options, 'train defects options');
  const { layout, items } = await readLabelledImages(o.data);
  if (layout === 'classification-csv') throw new KestrelError('E_DATA_FORMAT', `${o.data}/labels.csv has the X-ray layout (file,split,label); "train defects" reads the ELPV or magnetic-tile layout`);
  checkQcModelOut(o.out);
  const { train, held } = holdoutSplit(items, o.holdout, o.seed);
  const trained = await trainClassifier({
    task: 'defects',
    labels: ['functional', 'defective'],
    items: train.map((i) => ({ file: i.file, label: i.label, stratum: i.stratum })),
    features: { width: o.size, height: o.size, nodes: o.stages.map((st) => CENTERNET_STAGES[st]), pooling: o.pooling },
    calibrationFraction: o.calibrationFraction,
    seed: o.seed,
    l2Grid: o.l2Grid,
    head: o.head,
    ...(o.targetFpr !== undefined ? { targetFpr: o.targetFpr } : {}),
    steps: o.steps,
    provenance: { data: o.data, layout, holdoutFraction: o.holdout, holdoutImages: held.length, ...(o.command ? { command: o.command } : {}) },
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  const extra: Record<string, string> = held.length ? { 'holdout.txt': await writeHoldout(held.map((h) => h.file), o.data) } : {};
  const dir = await saveClassifier(o.out, trained, extra);
  return { dir, meta: trained.meta, layout, holdout: held.length };
}

/** Options of {@link trainAnomaly}. */
export const TrainAnomalyOptionsSchema = z.object({
  /** Folder of defect-free images, or a labelled folder (its defect-free rows are used). */
  good: z.string().min(1),
  out: z.string().min(1),
  holdout: z.number().min(0).lt(1).default(0.2),
  calibrationFraction: z.number().gt(0).lt(1).default(0.25),
  targetFpr: z.number().min(0).max(1).default(0.01),
  seed: z.number().int().default(20261129),
  size: z.number().int().min(32).max(1024).default(224),
  memorySize: z.number().int().positive().default(2000),
  candidatesPerImage: z.number().int().positive().default(160),
  /** Feature-grid cells at each edge left out of the image score (part edges vary); 2 of 28 at 224 px. */
  border: z.number().int().min(0).default(2),
  command: z.string().optional(),
  onProgress: progressFn.optional(),
});
export type TrainAnomalyOptions = z.input<typeof TrainAnomalyOptionsSchema>;

/**
 * Train an anomaly model from defect-free images. With a labelled folder, only its defect-free rows
 * train; the held-out defect-free rows plus every defective row (never seen in training) are listed
 * in holdout.txt for `kestrel bench defects --files`.
 */
export async function trainAnomaly(options: TrainAnomalyOptions): Promise<{ dir: string; meta: AnomalyMeta; holdout: number }> {
  const o = parseOptions(TrainAnomalyOptionsSchema, options, 'train anomaly options');
  const labelled = existsSync(join(resolve(o.good), 'labels.csv'));
  let goodItems: LabelledImage[];
  let defective: LabelledImage[] = [];
  if (labelled) {
    const { items } = await readLabelledImages(o.good);
    goodItems = items.filter((i) => i.label === 0);
    defective = items.filter((i) => i.label === 1);
  } else {
    goodItems = (await listImageFiles(o.good)).map((file) => ({ file, label: 0 as const, stratum: '0', meta: {} }));
  }
  checkQcModelOut(o.out);
  const { train, held } = holdoutSplit(goodItems, o.holdout, o.seed);
  const m = await trainAnomalyModel({
    good: train.map((i) => i.file),
    calibrationFraction: o.calibrationFraction,
    targetFpr: o.targetFpr,
    seed: o.seed,
    size: o.size,
    memorySize: o.memorySize,
    candidatesPerImage: o.candidatesPerImage,
    border: o.border,
    provenance: { good: o.good, goodImages: goodItems.length, holdoutFraction: o.holdout, holdoutGood: held.length, ...(o.command ? { command: o.command } : {}) },
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  const heldAll = [...held, ...defective];
  const extra: Record<string, string> = heldAll.length ? { 'holdout.txt': await writeHoldout(heldAll.map((h) => h.file), o.good) } : {};
  const dir = await saveAnomalyModel(o.out, m, extra);
  return { dir, meta: m.meta, holdout: heldAll.length };
}

/** Options of {@link benchDefects}. */
export const BenchDefectsOptionsSchema = z.object({
  model: z.string().min(1).default('defects-elpv'),
  /** Labelled folder: ELPV or magnetic-tile layout (detected from labels.csv). */
  data: z.string().min(1),
  /** Score only the images listed in this file (paths relative to `data`, one a line), e.g. a model's holdout.txt. */
  files: z.string().optional(),
  onProgress: progressFn.optional(),
});
export type BenchDefectsOptions = z.input<typeof BenchDefectsOptionsSchema>;

/** What {@link benchDefects} returns. */
export interface DefectsBenchResult extends BinaryBenchReport {
  model: string;
  kind: 'classifier' | 'anomaly';
  data: string;
  layout: LabelsLayout;
  files?: string;
  msPerImage: number;
}

/** Score a defects model on a labelled folder at its stored threshold. */
export async function benchDefects(options: BenchDefectsOptions): Promise<DefectsBenchResult> {
  const o = parseOptions(BenchDefectsOptionsSchema, options, 'bench defects options');
  const { layout, items: all } = await readLabelledImages(o.data);
  if (layout === 'classification-csv') throw new KestrelError('E_DATA_FORMAT', `${o.data}/labels.csv has the X-ray layout (file,split,label); use "kestrel bench xray"`);
  let items = all;
  if (o.files) {
    const { readFile } = await import('node:fs/promises');
    let text: string;
    try {
      text = await readFile(o.files, 'utf8');
    } catch (e) {
      throw new KestrelError('E_DATA_FORMAT', `cannot read file list ${o.files}: ${(e as Error).message}`, { cause: e });
    }
    const wanted = new Set(text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).map((l) => resolve(o.data, l)));
    // An empty list would otherwise surface as a bare "no samples" from the statistics.
    if (wanted.size === 0) throw new KestrelError('E_DATA_FORMAT', `${o.files} lists no images; give one image path per line, relative to ${o.data}`);
    items = all.filter((i) => wanted.has(i.file));
    if (items.length !== wanted.size) throw new KestrelError('E_DATA_FORMAT', `${o.files} lists ${wanted.size} images, ${items.length} of them are in ${o.data}/labels.csv`);
  }
  const s = await loadDefectsScorer(o.model, o.onProgress);
  const scores: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < items.length; i++) {
    scores.push((await s.score(items[i]!.file)).score);
    if (i % 16 === 15 || i === items.length - 1) reportProgress({ task: 'bench defects', done: i + 1, total: items.length }, o.onProgress);
  }
  const ms = (performance.now() - t0) / items.length;
  const report = binaryBenchReport(items.map((i) => i.label), scores, s.meta.threshold, s.meta.labels);
  return { model: s.dir, kind: s.meta.kind, data: o.data, layout, ...(o.files ? { files: o.files } : {}), ...report, msPerImage: Math.round(ms * 10) / 10 };
}
