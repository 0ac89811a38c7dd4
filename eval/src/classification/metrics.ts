import { KestrelError } from '@kestrel/core';
import { clopperPearson, clopperPearsonUpper, type ProportionInterval } from './intervals.js';

/** A class label: a number, a string, or a boolean (binary: `true`/`1` is the positive class). */
export type Label = number | string | boolean;

function checkSameLength(a: ArrayLike<unknown>, b: ArrayLike<unknown>, what: string): void {
  if (a.length !== b.length) throw new KestrelError('E_OPTIONS', `${what}: labels and ${what === 'rocAuc' ? 'scores' : 'predictions'} differ in length (${a.length} vs ${b.length})`);
  if (a.length === 0) throw new KestrelError('E_OPTIONS', `${what}: no samples`);
}

// Booleans count as 1/0 so `true` labels match the default positive class 1.
const norm = (v: Label): number | string => (typeof v === 'boolean' ? (v ? 1 : 0) : v);

function isPositive(y: Label, positive: Label): boolean {
  return norm(y) === norm(positive);
}

/** Fraction of samples whose prediction equals the label. */
export function accuracy(yTrue: readonly Label[], yPred: readonly Label[]): number {
  checkSameLength(yTrue, yPred, 'accuracy');
  let ok = 0;
  for (let i = 0; i < yTrue.length; i++) if (norm(yTrue[i]!) === norm(yPred[i]!)) ok++;
  return ok / yTrue.length;
}

/** Confusion matrix in scikit-learn's layout: `matrix[i][j]` = samples with label `labels[i]` predicted `labels[j]`. */
export interface ConfusionMatrix {
  labels: Label[];
  matrix: number[][];
}

function sortLabels(ls: Label[]): Label[] {
  return ls.sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
}

/**
 * Confusion matrix over `labels` (default: every label seen in either list, sorted, as scikit-learn's
 * `confusion_matrix`). Samples whose label or prediction is not in `labels` are not counted.
 */
export function confusionMatrix(yTrue: readonly Label[], yPred: readonly Label[], labels?: readonly Label[]): ConfusionMatrix {
  checkSameLength(yTrue, yPred, 'confusionMatrix');
  const ls = labels ? [...labels] : sortLabels([...new Set<Label>([...yTrue, ...yPred])]);
  const index = new Map<Label, number>(ls.map((l, i) => [l, i]));
  const matrix = ls.map(() => new Array<number>(ls.length).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const r = index.get(yTrue[i]!);
    const c = index.get(yPred[i]!);
    if (r !== undefined && c !== undefined) matrix[r]![c]!++;
  }
  return { labels: ls, matrix };
}

/**
 * Balanced accuracy: the mean over classes present in `yTrue` of each class's recall (scikit-learn's
 * `balanced_accuracy_score`, not adjusted). For two classes, (TPR + TNR) / 2.
 */
export function balancedAccuracy(yTrue: readonly Label[], yPred: readonly Label[]): number {
  const { matrix } = confusionMatrix(yTrue, yPred);
  let sum = 0;
  let classes = 0;
  for (let i = 0; i < matrix.length; i++) {
    const row = matrix[i]!.reduce((a, b) => a + b, 0);
    if (row === 0) continue; // a class only predicted, never true, has no recall
    sum += matrix[i]![i]! / row;
    classes++;
  }
  return sum / classes;
}

/** Binary counts with `positive` as the positive class. */
export interface BinaryCounts {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Count TP / FP / TN / FN for a binary problem. */
export function binaryCounts(yTrue: readonly Label[], yPred: readonly Label[], positive: Label = 1): BinaryCounts {
  checkSameLength(yTrue, yPred, 'binaryCounts');
  const c: BinaryCounts = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < yTrue.length; i++) {
    const t = isPositive(yTrue[i]!, positive);
    const p = isPositive(yPred[i]!, positive);
    if (t && p) c.tp++;
    else if (!t && p) c.fp++;
    else if (!t && !p) c.tn++;
    else c.fn++;
  }
  return c;
}

/** Precision, recall and F1 of the positive class. */
export interface PrecisionRecallF1 extends BinaryCounts {
  precision: number;
  recall: number;
  f1: number;
}

/**
 * Precision = TP/(TP+FP), recall = TP/(TP+FN), F1 their harmonic mean, for the positive class; a
 * ratio with a zero denominator is 0 (scikit-learn's `zero_division=0`).
 */
export function precisionRecallF1(yTrue: readonly Label[], yPred: readonly Label[], positive: Label = 1): PrecisionRecallF1 {
  const c = binaryCounts(yTrue, yPred, positive);
  const precision = c.tp + c.fp > 0 ? c.tp / (c.tp + c.fp) : 0;
  const recall = c.tp + c.fn > 0 ? c.tp / (c.tp + c.fn) : 0;
  const f1 = 2 * c.tp + c.fp + c.fn > 0 ? (2 * c.tp) / (2 * c.tp + c.fp + c.fn) : 0;
  return { ...c, precision, recall, f1 };
}

function checkScores(scores: ArrayLike<number>): void {
  for (let i = 0; i < scores.length; i++) {
    if (typeof scores[i] !== 'number' || Number.isNaN(scores[i])) {
      throw new KestrelError('E_OPTIONS', `scores[${i}] is not a number (${String(scores[i])})`);
    }
  }
}

/**
 * ROC AUC of `scores` for the positive class, as the Mann-Whitney statistic: the probability that a
 * random positive scores above a random negative, ties counting one half (mid-ranks). Equal to
 * scikit-learn's `roc_auc_score`. Needs both classes.
 */
export function rocAuc(yTrue: readonly Label[], scores: ArrayLike<number>, positive: Label = 1): number {
  checkSameLength(yTrue, scores, 'rocAuc');
  checkScores(scores);
  const n = yTrue.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSumPos = 0;
  let nPos = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[idx[j + 1]!] === scores[idx[i]!]) j++;
    const midRank = (i + j) / 2 + 1; // 1-based average rank of the tie group
    for (let t = i; t <= j; t++) if (isPositive(yTrue[idx[t]!]!, positive)) { rankSumPos += midRank; nPos++; }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) {
    throw new KestrelError('E_DATA_FORMAT', `ROC AUC needs both classes; got ${nPos} positive and ${nNeg} negative samples`);
  }
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Error rates at one threshold, with exact intervals for the false-positive rate. */
export interface RatesAtThreshold {
  /** Samples with score ≥ threshold are predicted positive. */
  threshold: number;
  fp: number;
  negatives: number;
  tp: number;
  positives: number;
  /** fp / negatives (NaN without negatives). */
  fpr: number;
  /** tp / positives (NaN without positives). */
  tpr: number;
  /** Two-sided Clopper-Pearson interval for the FPR (null without negatives). */
  fprInterval: ProportionInterval | null;
  /** One-sided Clopper-Pearson upper bound for the FPR (null without negatives). */
  fprUpper: ProportionInterval | null;
}

/**
 * False- and true-positive rates when samples with `score ≥ threshold` are called positive, with the
 * FPR's exact Clopper-Pearson interval (two-sided) and one-sided upper bound at `confidence`.
 */
export function ratesAtThreshold(yTrue: readonly Label[], scores: ArrayLike<number>, threshold: number, confidence = 0.95, positive: Label = 1): RatesAtThreshold {
  checkSameLength(yTrue, scores, 'ratesAtThreshold');
  checkScores(scores);
  let fp = 0, negatives = 0, tp = 0, positives = 0;
  for (let i = 0; i < yTrue.length; i++) {
    const called = scores[i]! >= threshold;
    if (isPositive(yTrue[i]!, positive)) { positives++; if (called) tp++; } else { negatives++; if (called) fp++; }
  }
  return {
    threshold, fp, negatives, tp, positives,
    fpr: negatives > 0 ? fp / negatives : NaN,
    tpr: positives > 0 ? tp / positives : NaN,
    fprInterval: negatives > 0 ? clopperPearson(fp, negatives, confidence) : null,
    fprUpper: negatives > 0 ? clopperPearsonUpper(fp, negatives, confidence) : null,
  };
}
