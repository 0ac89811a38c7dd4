import { z } from 'zod';
import { KestrelError, reportProgress, type ProgressListener, type Tensor } from '@kestrel/core';
import { rocAuc, accuracy, thresholdForTargetFpr } from '@kestrel/eval';
import { FrozenBackbone, POOL_STATS } from './backbone.js';
import { pooledFeatures, pooledFeaturesOf, type FeatureSpec } from './features.js';
import { trainLogistic, predictLogistic, type LogisticHead } from './logistic.js';
import { trainMlp, predictMlp, type MlpHead } from './mlp.js';
import { stratifiedSplit } from './split.js';
import { f32, readQcModel, writeQcModel } from './model-dir.js';
import type { ImageInput } from './image-input.js';

const BackboneRefSchema = z.object({ name: z.string(), package: z.string(), sha256: z.record(z.string(), z.string()) });
const FeatureSpecSchema = z.object({
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  nodes: z.array(z.string()).min(1),
  pooling: z.union([z.literal('mean+max'), z.array(z.enum(POOL_STATS)).min(1)]),
});

/** The JSON part of a classifier model folder (`qc-model.json`). */
export const ClassifierMetaSchema = z.object({
  format: z.literal('kestrel-qc'),
  version: z.literal(1),
  task: z.enum(['xray', 'defects']),
  kind: z.literal('classifier'),
  /** [negative, positive] class names. */
  labels: z.tuple([z.string(), z.string()]),
  backbone: BackboneRefSchema,
  features: FeatureSpecSchema,
  /** Head on the pooled features: logistic regression, or a one-hidden-layer MLP. */
  head: z.enum(['logistic', 'mlp']).default('logistic'),
  /** Positive iff probability ≥ threshold. */
  threshold: z.number(),
  /** How the threshold was chosen. */
  thresholdRule: z.string(),
  /** What the model saw and what it scored on its calibration split (selection data: optimistic). */
  calibration: z.record(z.string(), z.unknown()),
  training: z.record(z.string(), z.unknown()),
});
export type ClassifierMeta = z.infer<typeof ClassifierMetaSchema>;

/** A labelled training image. */
export interface TrainItem {
  file: string;
  label: 0 | 1;
  stratum: string;
}

/** Options of {@link trainClassifier}. */
export interface TrainClassifierOptions {
  task: 'xray' | 'defects';
  labels: [string, string];
  items: readonly TrainItem[];
  features: FeatureSpec;
  /** Fraction of `items` held back (stratified) to choose the L2 penalty and the threshold. */
  calibrationFraction: number;
  seed: number;
  /** L2 penalties tried; the one with the best calibration AUC wins. */
  l2Grid: number[];
  /** `logistic` (default) or `mlp` (32 ReLU units). */
  head?: 'logistic' | 'mlp';
  /** Choose the threshold for this FPR on the calibration split; without it, 0.5 on the class-balanced head. */
  targetFpr?: number;
  steps: number;
  /** Recorded in the model (the command line that trained it, data folder...). */
  provenance: Record<string, unknown>;
  onProgress?: ProgressListener;
}

/** A trained head of either kind. */
export type ClassifierHead = ({ type: 'logistic' } & LogisticHead) | ({ type: 'mlp' } & MlpHead);

function predictHead(head: ClassifierHead, x: Float32Array): number {
  return head.type === 'logistic' ? predictLogistic(head, x) : predictMlp(head, x);
}

/** A trained classifier in memory. */
export interface TrainedClassifier {
  meta: ClassifierMeta;
  head: ClassifierHead;
}

/**
 * Train a binary classifier: frozen backbone features, pooled, and a class-balanced logistic-regression
 * head. A stratified, seeded calibration split picks the L2 penalty (by AUC) and, with `targetFpr`,
 * the decision threshold; the head itself is fitted on the rest.
 */
export async function trainClassifier(o: TrainClassifierOptions): Promise<TrainedClassifier> {
  const started = Date.now();
  if (o.items.length < 4) throw new KestrelError('E_DATA_FORMAT', `need at least 4 labelled images to train, got ${o.items.length}`);
  const [fitIx, calIx] = stratifiedSplit(o.items.map((i) => i.stratum), [1 - o.calibrationFraction, o.calibrationFraction], o.seed) as [number[], number[]];
  for (const [name, ix] of [['training', fitIx], ['calibration', calIx]] as const) {
    const pos = ix.filter((i) => o.items[i]!.label === 1).length;
    if (pos === 0 || pos === ix.length) throw new KestrelError('E_DATA_FORMAT', `the ${name} split has ${pos} positive of ${ix.length} images; both classes are needed (add images of the missing class)`);
  }
  const backbone = await FrozenBackbone.load(o.onProgress ? { onProgress: o.onProgress } : {});
  const feats = await pooledFeaturesOf(backbone, o.items.map((i) => i.file), o.features, { task: 'features', ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
  const fitX = fitIx.map((i) => feats[i]!);
  const fitY = fitIx.map((i) => o.items[i]!.label);
  const calY = calIx.map((i) => o.items[i]!.label);
  const headType = o.head ?? 'logistic';
  let best: { l2: number; auc: number; head: ClassifierHead; scores: number[] } | undefined;
  const grid: Array<{ l2: number; auc: number }> = [];
  for (let g = 0; g < o.l2Grid.length; g++) {
    const l2 = o.l2Grid[g]!;
    const head: ClassifierHead = headType === 'mlp'
      ? { type: 'mlp', ...trainMlp(fitX, fitY, { l2, seed: o.seed }) }
      : { type: 'logistic', ...trainLogistic(fitX, fitY, { l2, steps: o.steps, balanced: true }) };
    const scores = calIx.map((i) => predictHead(head, feats[i]!));
    const auc = rocAuc(calY, scores);
    grid.push({ l2, auc });
    if (!best || auc > best.auc) best = { l2, auc, head, scores };
    reportProgress({ task: 'fit head', done: g + 1, total: o.l2Grid.length }, o.onProgress);
  }
  const b = best!;
  let threshold = 0.5;
  let thresholdRule = 'probability ≥ 0.5 on the class-balanced head (equal class priors)';
  let fprOnCalibration: unknown;
  if (o.targetFpr !== undefined) {
    const t = thresholdForTargetFpr(calY, b.scores, o.targetFpr);
    threshold = t.threshold;
    thresholdRule = `lowest threshold with FPR ≤ ${o.targetFpr} on the calibration split (${t.negatives} negatives, ${t.allowedFp} false positives allowed)`;
    fprOnCalibration = { fp: t.fp, negatives: t.negatives, tpr: t.tpr, fpr: t.fpr };
  }
  const calPred = b.scores.map((s) => (s >= threshold ? 1 : 0));
  const meta: ClassifierMeta = {
    format: 'kestrel-qc',
    version: 1,
    task: o.task,
    kind: 'classifier',
    labels: o.labels,
    head: headType,
    backbone: backbone.ref,
    features: o.features,
    threshold,
    thresholdRule,
    calibration: {
      note: 'figures on the calibration split, which chose the L2 penalty and threshold: optimistic; see the model card for held-out figures',
      n: calIx.length,
      positives: calY.filter((y) => y === 1).length,
      auc: b.auc,
      accuracy: accuracy(calY, calPred),
      l2Grid: grid,
      ...(fprOnCalibration ? { atThreshold: fprOnCalibration } : {}),
    },
    training: {
      ...o.provenance,
      n: fitIx.length,
      positives: fitY.filter((y) => y === 1).length,
      seed: o.seed,
      calibrationFraction: o.calibrationFraction,
      head: headType === 'mlp' ? 'MLP (32 ReLU units), class-balanced, full-batch Adam, 150 steps' : 'logistic regression, class-balanced, full-batch Adam',
      l2: b.l2,
      ...(headType === 'logistic' ? { steps: o.steps } : {}),
      seconds: Math.round((Date.now() - started) / 100) / 10,
      trainedAt: new Date().toISOString(),
    },
  };
  return { meta, head: b.head };
}

/** Write a trained classifier to a model folder (atomically). */
export async function saveClassifier(outDir: string, c: TrainedClassifier, extra: Record<string, string> = {}): Promise<string> {
  const h = c.head;
  const d = h.mean.length;
  const common = { 'head.mean': f32(h.mean, [d]), 'head.std': f32(h.std, [d]) };
  const tensors = h.type === 'logistic'
    ? { ...common, 'head.weight': f32(h.weights, [d]), 'head.bias': f32(Float32Array.of(h.bias), [1]) }
    : {
      ...common,
      'mlp.w1': f32(h.w1, [h.b1.length, d]),
      'mlp.b1': f32(h.b1, [h.b1.length]),
      'mlp.w2': f32(h.w2, [h.b1.length]),
      'mlp.b2': f32(Float32Array.of(h.b2), [1]),
    };
  return writeQcModel(outDir, c.meta, tensors, extra);
}

/** A classifier ready to score images. */
export interface LoadedClassifier {
  dir: string;
  meta: ClassifierMeta;
  /** Probability of the positive class. */
  probability(input: ImageInput): Promise<number>;
}

function tensorF32(t: Map<string, Tensor>, name: string, dir: string): Float32Array {
  const x = t.get(name);
  if (!x || x.dtype !== 'f32') throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}: weights lack f32 tensor ${name}`);
  return x.data as Float32Array;
}

/** Load a classifier model folder (or shipped name); the backbone is pulled on first use if needed. */
export async function loadClassifier(nameOrDir: string, task: 'xray' | 'defects', onProgress?: ProgressListener): Promise<LoadedClassifier> {
  const { dir, meta, tensors } = await readQcModel(nameOrDir, (raw) => raw);
  return classifierFromFiles(dir, meta, tensors, task, onProgress);
}

/** Build a classifier from an already-read model folder (validates the JSON). */
export async function classifierFromFiles(dir: string, raw: unknown, tensors: Map<string, Tensor>, task: 'xray' | 'defects', onProgress?: ProgressListener): Promise<LoadedClassifier> {
  const r = ClassifierMetaSchema.safeParse(raw);
  if (!r.success) {
    const kind = (raw as { kind?: unknown } | null)?.kind;
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir} is not a Kestrel ${task} classifier${typeof kind === 'string' ? ` (it is a "${kind}" model)` : ''}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const meta = r.data;
  if (meta.task !== task) throw new KestrelError('E_OPTIONS', `${dir} is a "${meta.task}" model, not a "${task}" model`);
  const mean = tensorF32(tensors, 'head.mean', dir);
  const std = tensorF32(tensors, 'head.std', dir);
  const head: ClassifierHead = meta.head === 'mlp'
    ? { type: 'mlp', mean, std, w1: tensorF32(tensors, 'mlp.w1', dir), b1: tensorF32(tensors, 'mlp.b1', dir), w2: tensorF32(tensors, 'mlp.w2', dir), b2: tensorF32(tensors, 'mlp.b2', dir)[0]! }
    : { type: 'logistic', mean, std, weights: tensorF32(tensors, 'head.weight', dir), bias: tensorF32(tensors, 'head.bias', dir)[0]! };
  const backbone = await FrozenBackbone.load({ expected: meta.backbone, ...(onProgress ? { onProgress } : {}) });
  return {
    dir,
    meta,
    async probability(input) {
      return predictHead(head, await pooledFeatures(backbone, input, meta.features));
    },
  };
}
