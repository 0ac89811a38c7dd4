import { KestrelError } from '@kestrel/core';
import { ratesAtThreshold, type Label, type RatesAtThreshold } from './metrics.js';

/** The smallest double greater than x (x finite). */
export function nextUp(x: number): number {
  if (Number.isNaN(x) || x === Infinity) return x;
  if (x === 0) return Number.MIN_VALUE;
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  let bits = buf.getBigUint64(0);
  bits = x > 0 ? bits + 1n : bits - 1n;
  buf.setBigUint64(0, bits);
  return buf.getFloat64(0);
}

/** A threshold chosen for a target false-positive rate, with what it gives on the data it came from. */
export interface ThresholdChoice extends RatesAtThreshold {
  /** The requested FPR. */
  targetFpr: number;
  /** The most false positives the target allows on these negatives: floor(target × negatives). */
  allowedFp: number;
}

/**
 * Choose the decision threshold (positive iff `score ≥ threshold`) for a target false-positive rate
 * on validation scores: the lowest threshold whose FPR on the validation negatives is ≤ target, which
 * maximises validation TPR under that constraint. With negatives sorted by score, descending, and
 * m = floor(target × N), it is the next double above the (m+1)-th highest negative score (so tied
 * negatives are all on the negative side); if m ≥ N every sample is called positive. The returned
 * rates are on the validation data; report FPR on held-out data with its interval.
 */
export function thresholdForTargetFpr(yTrue: readonly Label[], scores: ArrayLike<number>, targetFpr: number, confidence = 0.95, positive: Label = 1): ThresholdChoice {
  if (!(targetFpr >= 0 && targetFpr <= 1)) throw new KestrelError('E_OPTIONS', `target FPR must be in [0, 1], got ${targetFpr}`);
  if (yTrue.length !== scores.length) throw new KestrelError('E_OPTIONS', `labels and scores differ in length (${yTrue.length} vs ${scores.length})`);
  const neg: number[] = [];
  let lowest = Infinity;
  for (let i = 0; i < yTrue.length; i++) {
    const s = scores[i]!;
    if (typeof s !== 'number' || Number.isNaN(s)) throw new KestrelError('E_OPTIONS', `scores[${i}] is not a number (${String(s)})`);
    lowest = Math.min(lowest, s);
    const y = yTrue[i]!;
    const isPos = (typeof y === 'boolean' ? (y ? 1 : 0) : y) === (typeof positive === 'boolean' ? (positive ? 1 : 0) : positive);
    if (!isPos) neg.push(s);
  }
  if (neg.length === 0) throw new KestrelError('E_DATA_FORMAT', 'choosing a threshold for a target FPR needs negative (defect-free) validation samples');
  neg.sort((a, b) => b - a);
  // A relative nudge so that e.g. 0.01 × 300 = 3.0000000000000004 still allows 3 and 0.07 × 100 = 7.000000000000001 allows 7.
  const allowedFp = Math.floor(targetFpr * neg.length * (1 + 1e-12));
  const threshold = allowedFp >= neg.length ? lowest : nextUp(neg[allowedFp]!);
  return { ...ratesAtThreshold(yTrue, scores, threshold, confidence, positive), targetFpr, allowedFp };
}
