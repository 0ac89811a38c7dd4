import { KestrelError } from '@kestrel/core';
import { betaQuantile } from './beta.js';

function checkCounts(k: number, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new KestrelError('E_OPTIONS', `the number of trials must be a positive integer, got ${n}`);
  if (!Number.isInteger(k) || k < 0 || k > n) throw new KestrelError('E_OPTIONS', `the number of events must be an integer in [0, ${n}], got ${k}`);
}

function checkConfidence(c: number): void {
  if (!(c > 0 && c < 1)) throw new KestrelError('E_OPTIONS', `confidence must be in (0, 1), got ${c}`);
}

/** A binomial proportion with its exact interval. */
export interface ProportionInterval {
  /** Events (e.g. false positives). */
  k: number;
  /** Trials (e.g. negatives). */
  n: number;
  /** k / n. */
  estimate: number;
  lower: number;
  upper: number;
  confidence: number;
  /** `'two-sided'` (equal tails) or `'one-sided-upper'` (lower is 0). */
  sided: 'two-sided' | 'one-sided-upper';
}

/**
 * Exact Clopper-Pearson interval for a binomial proportion (two-sided, equal tails, default 95 %):
 * lower = Beta quantile α/2 of Beta(k, n−k+1), upper = quantile 1−α/2 of Beta(k+1, n−k); 0 and 1 at
 * k = 0 and k = n. This is scipy's `binomtest(k, n).proportion_ci(method='exact')`.
 */
export function clopperPearson(k: number, n: number, confidence = 0.95): ProportionInterval {
  checkCounts(k, n);
  checkConfidence(confidence);
  const alpha = 1 - confidence;
  // k = 0 / k = n have closed forms; expm1/log keep them exact for large n.
  const lower = k === 0 ? 0 : k === n ? Math.exp(Math.log(alpha / 2) / n) : betaQuantile(alpha / 2, k, n - k + 1);
  const upper = k === n ? 1 : k === 0 ? -Math.expm1(Math.log(alpha / 2) / n) : betaQuantile(1 - alpha / 2, k + 1, n - k);
  return { k, n, estimate: k / n, lower, upper, confidence, sided: 'two-sided' };
}

/**
 * One-sided exact (Clopper-Pearson) upper bound: the largest p not rejected at level 1−confidence
 * when k or fewer events were seen in n trials; quantile `confidence` of Beta(k+1, n−k). For k = 0
 * this is 1 − (1−confidence)^(1/n).
 */
export function clopperPearsonUpper(k: number, n: number, confidence = 0.95): ProportionInterval {
  checkCounts(k, n);
  checkConfidence(confidence);
  const alpha = 1 - confidence;
  const upper = k === n ? 1 : k === 0 ? -Math.expm1(Math.log(alpha) / n) : betaQuantile(confidence, k + 1, n - k);
  return { k, n, estimate: k / n, lower: 0, upper, confidence, sided: 'one-sided-upper' };
}

/** How many defect-free samples with zero false alarms support a rate claim. */
export interface ZeroFailureSampleSize {
  /** The claimed rate p (e.g. FPR 7.2e-6). */
  p: number;
  confidence: number;
  /** Exact one-sided: smallest n with (1−p)^n ≤ 1−confidence (the one-sided Clopper-Pearson upper bound at 0/n is ≤ p). */
  exactOneSided: number;
  /** Exact two-sided: smallest n with (1−p)^n ≤ (1−confidence)/2 (upper end of the two-sided interval at 0/n is ≤ p). */
  exactTwoSided: number;
  /** Rule of three: n ≈ 3/p (an approximation of the one-sided 95 % bound, −ln 0.05 ≈ 2.996); rounded up. Only for 95 %. */
  ruleOfThree: number | null;
}

/** Smallest n ≥ 1 with n·ln(1−p) ≤ ln(tail). */
function smallestN(p: number, tail: number): number {
  const l1p = Math.log1p(-p);
  const lt = Math.log(tail);
  let n = Math.max(1, Math.ceil(lt / l1p));
  // Guard the ceil against rounding in the division.
  while (n > 1 && (n - 1) * l1p <= lt) n--;
  while (n * l1p > lt) n++;
  return n;
}

/**
 * "How many consecutive defect-free samples without a false alarm support a false-positive-rate claim
 * of p at 95 %?" Exact one-sided answer (the usual one for "FPR ≤ p"), the two-sided variant, and the
 * rule of three.
 */
export function zeroFailureSampleSize(p: number, confidence = 0.95): ZeroFailureSampleSize {
  if (!(p > 0 && p < 1)) throw new KestrelError('E_OPTIONS', `the claimed rate must be in (0, 1), got ${p}`);
  checkConfidence(confidence);
  const alpha = 1 - confidence;
  return {
    p,
    confidence,
    exactOneSided: smallestN(p, alpha),
    exactTwoSided: smallestN(p, alpha / 2),
    // The small offset keeps float noise (3 / 0.001 = 3000.0000000000005) from adding one.
    ruleOfThree: Math.abs(confidence - 0.95) < 1e-12 ? Math.ceil(3 / p - 1e-9) : null,
  };
}
