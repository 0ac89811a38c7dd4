import { z } from 'zod';
import { KestrelError, parseOptions, Xoshiro128 } from '@kestrel/core';
import { accuracy, rocAuc, type Label } from './metrics.js';

/**
 * xoshiro128** seeded through splitmix32 (32-bit draws): bootstrap intervals are reproducible from
 * the seed on every platform.
 */
export function seededRandom(seed: number): () => number {
  const g = new Xoshiro128(seed);
  return () => g.nextU32() / 4294967296;
}

/** Bootstrap settings. Defaults: 2000 resamples, seed 20240611, 95 % percentile interval. */
export const BootstrapOptionsSchema = z.object({
  resamples: z.number().int().min(10).max(1_000_000).default(2000),
  seed: z.number().int().default(20240611),
  confidence: z.number().gt(0).lt(1).default(0.95),
  /** Resample positives and negatives separately (keeps the class balance; AUC always defined). */
  stratified: z.boolean().optional(),
});
export type BootstrapOptions = z.input<typeof BootstrapOptionsSchema>;

/** A statistic with its bootstrap percentile interval. */
export interface BootstrapInterval {
  /** The statistic on the full sample. */
  estimate: number;
  lower: number;
  upper: number;
  confidence: number;
  method: 'percentile';
  resamples: number;
  /** Resamples where the statistic was defined (e.g. AUC needs both classes). */
  resamplesUsed: number;
  seed: number;
  stratified: boolean;
}

/** numpy's default ('linear') quantile of sorted values. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * Percentile bootstrap of a statistic over `n` samples: draw `resamples` index sets of size n with
 * replacement (within each group when `groups` is given: stratified), evaluate `statistic` on each
 * (return NaN when undefined; those draws are skipped), and take the (1−c)/2 and (1+c)/2 quantiles.
 */
export function bootstrapInterval(
  n: number,
  statistic: (indices: readonly number[]) => number,
  options: BootstrapOptions = {},
  groups?: readonly (readonly number[])[],
): BootstrapInterval {
  const o = parseOptions(BootstrapOptionsSchema, options, 'bootstrap options');
  if (!(n > 0)) throw new KestrelError('E_OPTIONS', 'bootstrap needs at least one sample');
  const all = Array.from({ length: n }, (_, i) => i);
  const estimate = statistic(all);
  const rand = seededRandom(o.seed);
  const strata = groups ?? [all];
  const values: number[] = [];
  const idx = new Array<number>(n);
  for (let r = 0; r < o.resamples; r++) {
    let p = 0;
    for (const g of strata) for (let i = 0; i < g.length; i++) idx[p++] = g[Math.floor(rand() * g.length)]!;
    const v = statistic(idx.slice(0, p));
    if (!Number.isNaN(v)) values.push(v);
  }
  if (values.length === 0) throw new KestrelError('E_DATA_FORMAT', 'the statistic was undefined on every bootstrap resample');
  values.sort((a, b) => a - b);
  const a = (1 - o.confidence) / 2;
  return {
    estimate,
    lower: quantileSorted(values, a),
    upper: quantileSorted(values, 1 - a),
    confidence: o.confidence,
    method: 'percentile',
    resamples: o.resamples,
    resamplesUsed: values.length,
    seed: o.seed,
    stratified: groups !== undefined,
  };
}

function byClass(yTrue: readonly Label[], positive: Label): number[][] {
  const isPos = (y: Label): boolean => (typeof y === 'boolean' ? (y ? 1 : 0) : y) === (typeof positive === 'boolean' ? (positive ? 1 : 0) : positive);
  const pos: number[] = [];
  const neg: number[] = [];
  yTrue.forEach((y, i) => (isPos(y) ? pos : neg).push(i));
  return [neg, pos];
}

/**
 * ROC AUC with a percentile bootstrap interval. Stratified by default (positives and negatives
 * resampled separately, as pROC's `ci.auc` does), so every resample has both classes; with
 * `stratified: false`, resamples with one class are skipped and counted out of `resamplesUsed`.
 * Each resample costs O(n): scores are sorted once and a resample is a vector of multiplicities.
 */
export function bootstrapAuc(yTrue: readonly Label[], scores: ArrayLike<number>, options: BootstrapOptions = {}, positive: Label = 1): BootstrapInterval {
  rocAuc(yTrue, scores, positive); // validates lengths, scores and both classes up front
  const stratified = options.stratified ?? true;
  const n = yTrue.length;
  const [negIdx, posIdx] = byClass(yTrue, positive);
  const isPos = new Uint8Array(n);
  for (const i of posIdx!) isPos[i] = 1;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  // groupEnd[t]: one past the last position of the tie group that starts at sorted position t.
  const groupStart: number[] = [];
  for (let t = 0; t < n; t++) if (t === 0 || scores[order[t]!] !== scores[order[t - 1]!]) groupStart.push(t);
  groupStart.push(n);
  const mult = new Float64Array(n);
  // Mann-Whitney with multiplicities: Σ over tie groups of P_g·(N_below + N_g/2), over P·N. All terms
  // are integers or halves, so this equals rocAuc() on the expanded resample exactly.
  const stat = (ix: readonly number[]): number => {
    mult.fill(0);
    for (const i of ix) mult[i]! += 1;
    let below = 0, num = 0, pTot = 0;
    for (let g = 0; g + 1 < groupStart.length; g++) {
      let pg = 0, ng = 0;
      for (let t = groupStart[g]!; t < groupStart[g + 1]!; t++) {
        const i = order[t]!;
        if (isPos[i]) pg += mult[i]!; else ng += mult[i]!;
      }
      num += pg * (below + ng / 2);
      below += ng;
      pTot += pg;
    }
    return pTot === 0 || below === 0 ? NaN : num / (pTot * below);
  };
  return bootstrapInterval(n, stat, options, stratified ? [negIdx!, posIdx!] : undefined);
}

/**
 * Accuracy with a percentile bootstrap interval (plain resampling by default; `stratified: true`
 * resamples each true class separately, with `positive` marking the positive class).
 */
export function bootstrapAccuracy(yTrue: readonly Label[], yPred: readonly Label[], options: BootstrapOptions = {}, positive: Label = 1): BootstrapInterval {
  accuracy(yTrue, yPred); // validates
  const stat = (ix: readonly number[]): number => accuracy(ix.map((i) => yTrue[i]!), ix.map((i) => yPred[i]!));
  return bootstrapInterval(yTrue.length, stat, options, options.stratified === true ? byClass(yTrue, positive) : undefined);
}
