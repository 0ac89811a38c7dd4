import { z } from 'zod';
import { KestrelError, reportProgress, type ProgressListener, type Tensor } from '@kestrel/core';
import { thresholdForTargetFpr } from '@kestrel/eval';
import { CENTERNET_NODES, FrozenBackbone } from '../training/backbone.js';
import { loadGrayResized, type ImageInput } from '../training/image-input.js';
import { f32, readQcModel, writeQcModel } from '../training/model-dir.js';
import { seededRandom, shuffleInPlace } from '../training/random.js';
import { PatchMemory, greedyCoreset, imageScore, patchGrid, smoothMap, type PatchSpec } from './patchcore.js';

/** The JSON part of an anomaly model folder. */
export const AnomalyMetaSchema = z.object({
  format: z.literal('kestrel-qc'),
  version: z.literal(1),
  task: z.literal('defects'),
  kind: z.literal('anomaly'),
  labels: z.tuple([z.string(), z.string()]),
  backbone: z.object({ name: z.string(), package: z.string(), sha256: z.record(z.string(), z.string()) }),
  patches: z.object({ width: z.number().int().positive(), height: z.number().int().positive(), nodes: z.array(z.string()).min(1), neighbourhood: z.number().int().positive(), border: z.number().int().min(0).default(0) }),
  /** Image score: maximum of the smoothed patch nearest-neighbour distance map, inside `patches.border`. */
  score: z.literal('max-smoothed-patch-nn-distance'),
  threshold: z.number(),
  thresholdRule: z.string(),
  calibration: z.record(z.string(), z.unknown()),
  training: z.record(z.string(), z.unknown()),
});
export type AnomalyMeta = z.infer<typeof AnomalyMetaSchema>;

/** Options of {@link trainAnomalyModel}. */
export interface TrainAnomalyOptions {
  /** Defect-free images: the memory is built from some, the threshold calibrated on the others. */
  good: readonly string[];
  calibrationFraction: number;
  targetFpr: number;
  seed: number;
  size: number;
  /** Patches kept in the memory after coreset selection. */
  memorySize: number;
  /** Random patches per training image offered to the coreset selection. */
  candidatesPerImage: number;
  /** Grid cells at each edge left out of the image score. */
  border: number;
  provenance: Record<string, unknown>;
  onProgress?: ProgressListener;
}

/** An image's anomaly score and patch score map. */
export interface AnomalyScore {
  score: number;
  heatmap: { width: number; height: number; data: Float32Array };
}

/** A loaded (or freshly trained) anomaly model. */
export interface AnomalyModel {
  meta: AnomalyMeta;
  memory: PatchMemory;
  score(input: ImageInput): Promise<AnomalyScore>;
}

function scorer(backbone: FrozenBackbone, memory: PatchMemory, spec: PatchSpec): (input: ImageInput) => Promise<AnomalyScore> {
  return async (input) => {
    const img = await loadGrayResized(input, spec.width, spec.height);
    const g = await patchGrid(backbone, img, spec);
    const d = await memory.nearest(g.data);
    const map = smoothMap(d, g.gridW, g.gridH);
    const score = imageScore(map, g.gridW, g.gridH, spec.border);
    return { score, heatmap: { width: g.gridW, height: g.gridH, data: map } };
  };
}

/**
 * Train a PatchCore-style anomaly model from defect-free images only: patch features of the memory
 * images (frozen backbone, neighbourhood-averaged, two scales), a greedy coreset of them as the memory,
 * nearest-neighbour distance as the patch score, the maximum smoothed patch score as the image score,
 * and a threshold for `targetFpr` on held-back defect-free calibration images.
 */
export async function trainAnomalyModel(o: TrainAnomalyOptions): Promise<{ meta: AnomalyMeta; memoryData: Float32Array; dim: number }> {
  const started = Date.now();
  if (o.good.length < 5) throw new KestrelError('E_DATA_FORMAT', `need at least 5 defect-free images to train an anomaly model, got ${o.good.length}`);
  const rand = seededRandom(o.seed);
  const order = shuffleInPlace(o.good.map((_, i) => i), rand);
  const nCal = Math.max(1, Math.round(o.calibrationFraction * o.good.length));
  const calIx = order.slice(0, nCal).sort((a, b) => a - b);
  const fitIx = order.slice(nCal).sort((a, b) => a - b);
  const spec: PatchSpec = { width: o.size, height: o.size, nodes: [CENTERNET_NODES.stride8, CENTERNET_NODES.stride16], neighbourhood: 3, border: o.border };
  const backbone = await FrozenBackbone.load(o.onProgress ? { onProgress: o.onProgress } : {});
  // Candidate patches: a seeded random subset of every memory image's grid.
  let dim = 0;
  const cand: Float32Array[] = [];
  for (let k = 0; k < fitIx.length; k++) {
    const img = await loadGrayResized(o.good[fitIx[k]!]!, spec.width, spec.height);
    const g = await patchGrid(backbone, img, spec);
    dim = g.dim;
    const n = g.gridW * g.gridH;
    const pick = shuffleInPlace(Array.from({ length: n }, (_, i) => i), rand).slice(0, Math.min(n, o.candidatesPerImage));
    const rows = new Float32Array(pick.length * dim);
    pick.forEach((p, j) => rows.set(g.data.subarray(p * dim, (p + 1) * dim), j * dim));
    cand.push(rows);
    if (k % 16 === 15 || k === fitIx.length - 1) reportProgress({ task: 'memory features', done: k + 1, total: fitIx.length }, o.onProgress);
  }
  const all = new Float32Array(cand.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of cand) { all.set(c, off); off += c.length; }
  const chosen = greedyCoreset(all, dim, o.memorySize, { seed: o.seed, ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
  const memoryData = new Float32Array(chosen.length * dim);
  chosen.forEach((r, j) => memoryData.set(all.subarray(r * dim, (r + 1) * dim), j * dim));
  const memory = new PatchMemory(memoryData, dim);
  try {
    const score = scorer(backbone, memory, spec);
    const calScores: number[] = [];
    for (let k = 0; k < calIx.length; k++) {
      calScores.push((await score(o.good[calIx[k]!]!)).score);
      reportProgress({ task: 'calibrate', done: k + 1, total: calIx.length }, o.onProgress);
    }
    const t = thresholdForTargetFpr(calScores.map(() => 0), calScores, o.targetFpr);
    const meta: AnomalyMeta = {
      format: 'kestrel-qc',
      version: 1,
      task: 'defects',
      kind: 'anomaly',
      labels: ['good', 'defective'],
      backbone: backbone.ref,
      patches: spec,
      score: 'max-smoothed-patch-nn-distance',
      threshold: t.threshold,
      thresholdRule: `lowest threshold with FPR ≤ ${o.targetFpr} on ${t.negatives} held-back defect-free images (${t.allowedFp} false alarms allowed)`,
      calibration: {
        note: 'defect-free calibration images only (they chose the threshold); see the model card for held-out figures',
        n: calIx.length,
        fp: t.fp,
        fpr: t.fpr,
        targetFpr: o.targetFpr,
      },
      training: {
        ...o.provenance,
        memoryImages: fitIx.length,
        candidatePatches: all.length / dim,
        memoryPatches: chosen.length,
        patchDim: dim,
        seed: o.seed,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        trainedAt: new Date().toISOString(),
      },
    };
    return { meta, memoryData, dim };
  } finally {
    memory.dispose();
  }
}

/** Write an anomaly model folder. */
export async function saveAnomalyModel(outDir: string, m: { meta: AnomalyMeta; memoryData: Float32Array; dim: number }, extra: Record<string, string> = {}): Promise<string> {
  return writeQcModel(outDir, m.meta, { memory: f32(m.memoryData, [m.memoryData.length / m.dim, m.dim]) }, extra);
}

/** Load an anomaly model folder (backbone pulled on first use). */
export async function loadAnomalyModel(dir: string, raw: unknown, tensors: Map<string, Tensor>, onProgress?: ProgressListener): Promise<AnomalyModel> {
  const r = AnomalyMetaSchema.safeParse(raw);
  if (!r.success) throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir} is not a Kestrel anomaly model: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const meta = r.data;
  const mem = tensors.get('memory');
  if (!mem || mem.dtype !== 'f32' || mem.shape.length !== 2) throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}: weights lack the 2-D f32 tensor "memory"`);
  const backbone = await FrozenBackbone.load({ expected: meta.backbone, ...(onProgress ? { onProgress } : {}) });
  const memory = new PatchMemory(mem.data as Float32Array, mem.shape[1]!);
  return { meta, memory, score: scorer(backbone, memory, meta.patches) };
}

/** Read any QC model folder's JSON and tensors without interpreting the kind. */
export async function readAnyQcModel(nameOrDir: string): Promise<{ dir: string; raw: Record<string, unknown>; tensors: Map<string, Tensor> }> {
  const { dir, meta, tensors } = await readQcModel(nameOrDir, (raw, d) => {
    if (typeof raw !== 'object' || raw === null || (raw as Record<string, unknown>).format !== 'kestrel-qc') {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${d} is not a Kestrel QC model (qc-model.json lacks "format": "kestrel-qc")`);
    }
    return raw as Record<string, unknown>;
  });
  return { dir, raw: meta, tensors };
}
