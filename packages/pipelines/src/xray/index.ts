/**
 * The `xray` pipeline: normal vs pneumonia on chest X-rays (PneumoniaMNIST layout), a logistic head on
 * frozen COCO-pretrained MobileNetV3 features, trained in Node.
 */
import { z } from 'zod';
import { KestrelError, parseOptions, reportProgress, type ProgressListener } from '@kestrel/core';
import { readLabelledImages, type LabelledImage } from '@kestrel/datasets';
import { CENTERNET_NODES } from '../training/backbone.js';
import { loadClassifier, saveClassifier, trainClassifier, type ClassifierMeta } from '../training/classifier.js';
import { binaryBenchReport, type BinaryBenchReport } from '../training/report.js';
import type { ImageInput } from '../training/image-input.js';
import { checkQcModelOut } from '../training/model-dir.js';

/** Options of `pipeline('xray', ...)`. */
export const XrayOptionsSchema = z.object({
  /** Model folder or shipped name. */
  model: z.string().min(1).default('xray-pneumonia'),
  onProgress: z.custom<ProgressListener>((v) => typeof v === 'function').optional(),
});
export type XrayOptions = z.input<typeof XrayOptionsSchema>;

/** One X-ray verdict. */
export interface XrayResult {
  /** The class at the model's threshold (`normal` or `pneumonia` for the shipped model). */
  label: string;
  /** Probability of the positive class (pneumonia). */
  probability: number;
}

/** Classify one image, or a list of images (results in input order). */
export interface XrayPipeline {
  (image: ImageInput): Promise<XrayResult>;
  (images: readonly ImageInput[]): Promise<XrayResult[]>;
  /** The loaded model's description. */
  readonly model: ClassifierMeta;
  /** Stop the model's worker threads (nothing to release in process). */
  dispose(): Promise<void>;
}

declare module '../registry.js' {
  interface PipelineTasks {
    xray: { options: XrayOptions; fn: XrayPipeline };
  }
}

/** Read an X-ray data folder: labels.csv must have the PneumoniaMNIST layout (file, split, label). */
async function readXrayData(dir: string, split: string | undefined): Promise<LabelledImage[]> {
  const { layout, items } = await readLabelledImages(dir, split !== undefined ? { split } : {});
  if (layout !== 'classification-csv') {
    throw new KestrelError('E_DATA_FORMAT', `${dir}/labels.csv has the ${layout} layout; X-ray data needs a CSV with file,split,label columns (1 = pneumonia)`);
  }
  return items;
}

/** Registry entry point. */
export async function createPipeline(task: string, options: unknown): Promise<XrayPipeline> {
  if (task !== 'xray') throw new KestrelError('E_OPTIONS', `the xray module has no task "${task}"`);
  const o = parseOptions(XrayOptionsSchema, options, 'xray options');
  const clf = await loadClassifier(o.model, 'xray', o.onProgress);
  const one = async (img: ImageInput): Promise<XrayResult> => {
    const p = await clf.probability(img);
    return { label: clf.meta.labels[p >= clf.meta.threshold ? 1 : 0], probability: p };
  };
  const fn = (async (input: ImageInput | readonly ImageInput[]) => {
    if (Array.isArray(input)) {
      const out: XrayResult[] = [];
      for (const x of input as readonly ImageInput[]) out.push(await one(x));
      return out;
    }
    return one(input as ImageInput);
  }) as XrayPipeline;
  Object.defineProperty(fn, 'model', { value: clf.meta, enumerable: true });
  return fn;
}

/** Options of {@link trainXray}. */
export const TrainXrayOptionsSchema = z.object({
  /** Data folder with labels.csv (file, split, label). */
  data: z.string().min(1),
  /** Output model folder. */
  out: z.string().min(1),
  /** Train on rows of this split only (default: every row). */
  split: z.string().optional(),
  seed: z.number().int().default(20261129),
  /** Share of the training rows held back to choose the penalty and threshold. */
  calibrationFraction: z.number().gt(0).lt(1).default(0.2),
  /** Choose the threshold for this false-positive rate on the calibration rows (default: 0.5, balanced). */
  targetFpr: z.number().min(0).max(1).optional(),
  /** Backbone input size: the 28 px images are upsampled to it. */
  size: z.number().int().min(32).max(1024).default(224),
  l2Grid: z.array(z.number().positive()).min(1).default([0.01, 0.1, 0.3]),
  steps: z.number().int().positive().default(300),
  /** Recorded in the model card. */
  command: z.string().optional(),
  onProgress: z.custom<ProgressListener>((v) => typeof v === 'function').optional(),
});
export type TrainXrayOptions = z.input<typeof TrainXrayOptionsSchema>;

/** Train an X-ray classifier from a PneumoniaMNIST-layout folder and write it to `out`. */
export async function trainXray(options: TrainXrayOptions): Promise<{ dir: string; meta: ClassifierMeta }> {
  const o = parseOptions(TrainXrayOptionsSchema, options, 'train xray options');
  const items = await readXrayData(o.data, o.split);
  checkQcModelOut(o.out);
  const trained = await trainClassifier({
    task: 'xray',
    labels: ['normal', 'pneumonia'],
    items: items.map((i) => ({ file: i.file, label: i.label, stratum: String(i.label) })),
    features: { width: o.size, height: o.size, nodes: Object.values(CENTERNET_NODES), pooling: 'mean+max' },
    calibrationFraction: o.calibrationFraction,
    seed: o.seed,
    l2Grid: o.l2Grid,
    ...(o.targetFpr !== undefined ? { targetFpr: o.targetFpr } : {}),
    steps: o.steps,
    provenance: { data: o.data, split: o.split ?? 'all', ...(o.command ? { command: o.command } : {}) },
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  const dir = await saveClassifier(o.out, trained);
  return { dir, meta: trained.meta };
}

/** Options of {@link benchXray}. */
export const BenchXrayOptionsSchema = z.object({
  model: z.string().min(1).default('xray-pneumonia'),
  data: z.string().min(1),
  split: z.string().optional(),
  onProgress: z.custom<ProgressListener>((v) => typeof v === 'function').optional(),
});
export type BenchXrayOptions = z.input<typeof BenchXrayOptionsSchema>;

/** What {@link benchXray} returns. */
export interface XrayBenchResult extends BinaryBenchReport {
  model: string;
  data: string;
  split: string;
  /** Mean wall time per image (decode + backbone + head), milliseconds. */
  msPerImage: number;
}

/** Score an X-ray model on a labelled folder: accuracy and AUC with 95 % bootstrap intervals, confusion matrix. */
export async function benchXray(options: BenchXrayOptions): Promise<XrayBenchResult> {
  const o = parseOptions(BenchXrayOptionsSchema, options, 'bench xray options');
  const items = await readXrayData(o.data, o.split);
  const clf = await loadClassifier(o.model, 'xray', o.onProgress);
  const scores: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < items.length; i++) {
    scores.push(await clf.probability(items[i]!.file));
    if (i % 16 === 15 || i === items.length - 1) reportProgress({ task: 'bench xray', done: i + 1, total: items.length }, o.onProgress);
  }
  const ms = (performance.now() - t0) / items.length;
  const report = binaryBenchReport(items.map((i) => i.label), scores, clf.meta.threshold, clf.meta.labels);
  return { model: clf.dir, data: o.data, split: o.split ?? 'all', ...report, msPerImage: Math.round(ms * 10) / 10 };
}
