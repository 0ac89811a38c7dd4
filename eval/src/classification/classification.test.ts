import { describe, expect, it } from 'vitest';
import { isKestrelError } from '@kestrel/core';
import {
  accuracy, balancedAccuracy, betaQuantile, binaryCounts, bootstrapAccuracy, bootstrapAuc, bootstrapInterval, clopperPearson, clopperPearsonUpper,
  confusionMatrix, incompleteBeta, logGamma, nextUp, precisionRecallF1, ratesAtThreshold, rocAuc, seededRandom,
  thresholdForTargetFpr, zeroFailureSampleSize,
} from './index.js';

// Binomial probabilities computed directly from the pmf (an independent route to the same numbers).
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}
function binomPmf(j: number, n: number, p: number): number {
  return Math.exp(logChoose(n, j) + j * Math.log(p) + (n - j) * Math.log1p(-p));
}
/** P(X <= k) for X ~ Bin(n, p). */
function binomCdf(k: number, n: number, p: number): number {
  let s = 0;
  for (let j = 0; j <= k; j++) s += binomPmf(j, n, p);
  return s;
}

describe('special functions', () => {
  it('logGamma matches factorials and Γ(1/2)', () => {
    expect(logGamma(1)).toBeCloseTo(0, 14);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 13);
    expect(logGamma(11)).toBeCloseTo(Math.log(3628800), 12);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 13);
  });
  it('incompleteBeta: closed forms', () => {
    for (const x of [0.01, 0.3, 0.5, 0.77, 0.999]) {
      expect(incompleteBeta(x, 1, 1)).toBeCloseTo(x, 14);
      expect(incompleteBeta(x, 2, 2)).toBeCloseTo(3 * x * x - 2 * x ** 3, 14);
      expect(incompleteBeta(x, 3.5, 1)).toBeCloseTo(x ** 3.5, 14);
      expect(incompleteBeta(x, 1, 4.25)).toBeCloseTo(1 - (1 - x) ** 4.25, 14);
    }
    for (const a of [0.5, 3.7, 50, 1e4]) expect(incompleteBeta(0.5, a, a)).toBeCloseTo(0.5, 12);
    expect(incompleteBeta(0, 2, 3)).toBe(0);
    expect(incompleteBeta(1, 2, 3)).toBe(1);
  });
  it('incompleteBeta equals binomial tails: I_p(k, n−k+1) = P(X ≥ k)', () => {
    // Exact: P(Bin(10, 1/2) >= 5) = 638/1024.
    expect(incompleteBeta(0.5, 5, 6)).toBeCloseTo(638 / 1024, 14);
    for (const [n, k, p] of [[20, 6, 0.3], [100, 3, 0.01], [1000, 990, 0.985], [5000, 40, 0.007]] as const) {
      const tail = 1 - binomCdf(k - 1, n, p);
      expect(Math.abs(incompleteBeta(p, k, n - k + 1) - tail)).toBeLessThan(1e-12);
    }
  });
  it('betaQuantile inverts the CDF, including tiny quantiles', () => {
    expect(betaQuantile(0.216, 2, 2)).toBeCloseTo(0.3, 13);
    expect(betaQuantile(0.5, 7, 7)).toBeCloseTo(0.5, 13);
    for (const [q, a, b] of [[0.025, 3, 98], [0.975, 4, 997], [0.95, 1.5, 2.5], [1e-10, 2, 5], [0.5, 2, 1e6], [0.999, 30, 3]] as const) {
      const x = betaQuantile(q, a, b);
      expect(Math.abs(incompleteBeta(x, a, b) - q) / q).toBeLessThan(1e-9);
    }
  });
});

describe('Clopper-Pearson', () => {
  it('0 of n: [0, 1 − 0.025^(1/n)]; n of n: [0.025^(1/n), 1]', () => {
    for (const n of [1, 10, 59, 1000, 416073]) {
      const ci = clopperPearson(0, n);
      expect(ci.lower).toBe(0);
      expect(ci.upper).toBeCloseTo(1 - 0.025 ** (1 / n), 14);
      const all = clopperPearson(n, n);
      expect(all.lower).toBeCloseTo(0.025 ** (1 / n), 14);
      expect(all.upper).toBe(1);
    }
    expect(clopperPearson(0, 10).upper).toBeCloseTo(0.3084971078187608, 12); // 1 − 0.025^0.1
  });
  it('1 of 2 is [1 − √0.975, √0.975] (the quantiles of Beta(1,2) and Beta(2,1))', () => {
    const ci = clopperPearson(1, 2);
    expect(ci.lower).toBeCloseTo(1 - Math.sqrt(0.975), 14);
    expect(ci.upper).toBeCloseTo(Math.sqrt(0.975), 14);
  });
  it('bounds solve the defining binomial tail equations', () => {
    for (const [k, n] of [[1, 10], [5, 10], [3, 200], [17, 60], [3, 1_000_000]] as const) {
      const ci = clopperPearson(k, n);
      // lower: P(X >= k | p_l) = 0.025; upper: P(X <= k | p_u) = 0.025
      expect(Math.abs(1 - binomCdf(k - 1, n, ci.lower) - 0.025)).toBeLessThan(1e-10);
      expect(Math.abs(binomCdf(k, n, ci.upper) - 0.025)).toBeLessThan(1e-10);
      expect(ci.lower).toBeLessThan(k / n);
      expect(ci.upper).toBeGreaterThan(k / n);
    }
    // Known values (e.g. scipy's binomtest(5, 10).proportion_ci()): (0.18708602, 0.81291398), symmetric.
    const five = clopperPearson(5, 10);
    expect(five.lower).toBeCloseTo(0.18708602, 7);
    expect(five.lower + five.upper).toBeCloseTo(1, 13);
    // binomtest(1, 10): (0.00252858, 0.44501612)
    const one = clopperPearson(1, 10);
    expect(one.lower).toBeCloseTo(1 - 0.975 ** 0.1, 14);
    expect(one.upper).toBeCloseTo(0.44501612, 7);
  });
  it('one-sided upper bound: 0 of n → 1 − 0.05^(1/n); k of n solves P(X ≤ k) = 0.05', () => {
    expect(clopperPearsonUpper(0, 59).upper).toBeCloseTo(1 - 0.05 ** (1 / 59), 15);
    expect(clopperPearsonUpper(0, 59).upper).toBeLessThan(0.05);
    expect(clopperPearsonUpper(0, 58).upper).toBeGreaterThan(0.05);
    const u = clopperPearsonUpper(2, 300);
    expect(Math.abs(binomCdf(2, 300, u.upper) - 0.05)).toBeLessThan(1e-11);
    expect(u.lower).toBe(0);
  });
  it('rejects impossible counts', () => {
    for (const [k, n] of [[-1, 5], [6, 5], [1.5, 5], [0, 0]]) {
      expect(() => clopperPearson(k!, n!)).toThrow(/must be/);
    }
  });
});

describe('zero-failure sample size (how many clean parts support an FPR claim)', () => {
  it('classic values: 59 for 5 %, 299 for 1 % (one-sided exact) and the rule of three', () => {
    expect(zeroFailureSampleSize(0.05).exactOneSided).toBe(59); // 0.95^59 = 0.0485 <= 0.05 < 0.95^58
    const one = zeroFailureSampleSize(0.01);
    expect(one.exactOneSided).toBe(299);
    expect(one.ruleOfThree).toBe(300);
    expect(one.exactTwoSided).toBe(368); // ln 0.025 / ln 0.99 = 367.04
  });
  it('7.2e-6: smallest n with (1 − p)^n <= 0.05', () => {
    const r = zeroFailureSampleSize(7.2e-6);
    const l = Math.log1p(-7.2e-6);
    expect(r.exactOneSided * l).toBeLessThanOrEqual(Math.log(0.05));
    expect((r.exactOneSided - 1) * l).toBeGreaterThan(Math.log(0.05));
    expect(r.exactOneSided).toBe(416073);
    expect(r.ruleOfThree).toBe(416667);
    // Consistency with the interval: n clean parts give a one-sided upper bound <= p, n − 1 do not.
    expect(clopperPearsonUpper(0, r.exactOneSided).upper).toBeLessThanOrEqual(7.2e-6);
    expect(clopperPearsonUpper(0, r.exactOneSided - 1).upper).toBeGreaterThan(7.2e-6);
    expect(clopperPearson(0, r.exactTwoSided).upper).toBeLessThanOrEqual(7.2e-6);
    expect(clopperPearson(0, r.exactTwoSided - 1).upper).toBeGreaterThan(7.2e-6);
  });
});

describe('classification metrics', () => {
  it('confusion matrix in scikit-learn layout', () => {
    expect(confusionMatrix([2, 0, 2, 2, 0, 1], [0, 0, 2, 2, 0, 2])).toEqual({ labels: [0, 1, 2], matrix: [[2, 0, 0], [0, 0, 1], [1, 0, 2]] });
  });
  it('accuracy / balanced accuracy', () => {
    expect(accuracy([0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 1])).toBeCloseTo(4 / 6, 15);
    expect(balancedAccuracy([0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 1])).toBeCloseTo(0.625, 15); // (3/4 + 1/2) / 2
    expect(accuracy([true, false], [1, 0])).toBe(1);
  });
  it('precision, recall, F1', () => {
    const r = precisionRecallF1([0, 1, 1, 0, 1], [1, 1, 0, 0, 1]);
    expect(r).toMatchObject({ tp: 2, fp: 1, tn: 1, fn: 1 });
    expect(r.precision).toBeCloseTo(2 / 3, 15);
    expect(r.recall).toBeCloseTo(2 / 3, 15);
    expect(r.f1).toBeCloseTo(2 / 3, 15);
    expect(precisionRecallF1([0, 0], [0, 0])).toMatchObject({ precision: 0, recall: 0, f1: 0 });
    expect(binaryCounts(['ok', 'bad'], ['bad', 'bad'], 'bad')).toEqual({ tp: 1, fp: 1, tn: 0, fn: 0 });
  });
  it('ROC AUC: hand examples, ties count one half', () => {
    expect(rocAuc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])).toBeCloseTo(0.75, 15);
    expect(rocAuc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9])).toBeCloseTo(3.5 / 4, 15);
    expect(rocAuc([0, 1, 0, 1], [1, 1, 1, 1])).toBe(0.5);
  });
  it('ROC AUC equals the pairwise count on random tied data', () => {
    const rand = seededRandom(7);
    const y: number[] = [];
    const s: number[] = [];
    for (let i = 0; i < 300; i++) { y.push(rand() < 0.3 ? 1 : 0); s.push(Math.round(rand() * 20) / 20 + 0.1 * y[i]!); }
    let wins = 0, pairs = 0;
    for (let i = 0; i < y.length; i++) for (let j = 0; j < y.length; j++) {
      if (y[i] === 1 && y[j] === 0) { pairs++; wins += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0; }
    }
    expect(rocAuc(y, s)).toBeCloseTo(wins / pairs, 13);
  });
  it('ROC AUC with one class is E_DATA_FORMAT; NaN scores E_OPTIONS', () => {
    try { rocAuc([1, 1], [0.2, 0.3]); expect.unreachable(); } catch (e) { expect(isKestrelError(e, 'E_DATA_FORMAT')).toBe(true); }
    try { rocAuc([0, 1], [0.2, NaN]); expect.unreachable(); } catch (e) { expect(isKestrelError(e, 'E_OPTIONS')).toBe(true); }
  });
  it('rates at a threshold with the FPR interval', () => {
    const r = ratesAtThreshold([0, 0, 0, 0, 1, 1], [0.1, 0.5, 0.7, 0.2, 0.9, 0.4], 0.5);
    expect(r).toMatchObject({ fp: 2, negatives: 4, tp: 1, positives: 2, fpr: 0.5, tpr: 0.5 });
    expect(r.fprInterval!.lower).toBeCloseTo(clopperPearson(2, 4).lower, 15);
    expect(Math.abs(binomCdf(2, 4, r.fprInterval!.upper) - 0.025)).toBeLessThan(1e-12);
  });
});

describe('threshold for a target FPR', () => {
  it('lowest threshold whose validation FPR is within the target', () => {
    const neg = [0.05, 0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6, 0.8, 0.9];
    const pos = [0.35, 0.55, 0.85, 0.95];
    const y = [...neg.map(() => 0), ...pos.map(() => 1)];
    const s = [...neg, ...pos];
    const t1 = thresholdForTargetFpr(y, s, 0.1); // 1 false positive allowed: just above 0.8
    expect(t1.allowedFp).toBe(1);
    expect(t1.threshold).toBe(nextUp(0.8));
    expect(t1).toMatchObject({ fp: 1, tp: 2 });
    const t0 = thresholdForTargetFpr(y, s, 0);
    expect(t0.threshold).toBe(nextUp(0.9));
    expect(t0.fp).toBe(0);
    // Ties: 6 allowed, but the 7th highest negative (0.3) ties the 6th, so both stay negative (5 FP).
    const t6 = thresholdForTargetFpr(y, s, 0.6);
    expect(t6.threshold).toBe(nextUp(0.3));
    expect(t6.fp).toBe(5);
    expect(t6.tp).toBe(4);
    expect(thresholdForTargetFpr(y, s, 1).fpr).toBe(1);
    // Float noise in target × N: 0.07 × 100 must allow exactly 7.
    const many = Array.from({ length: 100 }, (_, i) => i / 100);
    expect(thresholdForTargetFpr(many.map(() => 0), many, 0.07).fp).toBe(7);
  });
  it('needs negatives', () => {
    expect(() => thresholdForTargetFpr([1, 1], [0.1, 0.2], 0.1)).toThrow(/negative/);
  });
});

describe('bootstrap intervals', () => {
  const rand = seededRandom(123);
  const y: number[] = [];
  const s: number[] = [];
  for (let i = 0; i < 400; i++) { const c = rand() < 0.4 ? 1 : 0; y.push(c); s.push(rand() + 0.6 * c); }
  const pred = s.map((v) => (v >= 0.8 ? 1 : 0));
  it('is reproducible from the seed and brackets the estimate', () => {
    const a = bootstrapAuc(y, s, { seed: 5, resamples: 500 });
    const b = bootstrapAuc(y, s, { seed: 5, resamples: 500 });
    expect(a).toEqual(b);
    expect(a.estimate).toBeCloseTo(rocAuc(y, s), 15);
    expect(a.lower).toBeLessThan(a.estimate);
    expect(a.upper).toBeGreaterThan(a.estimate);
    expect(a.resamplesUsed).toBe(500);
    expect(bootstrapAuc(y, s, { seed: 6, resamples: 500 }).lower).not.toBe(a.lower);
  });
  it('fast AUC resampling equals recomputing rocAuc on every resample', () => {
    const ties = s.map((v) => Math.round(v * 10) / 10);
    const neg = y.flatMap((c, i) => (c === 0 ? [i] : []));
    const pos = y.flatMap((c, i) => (c === 1 ? [i] : []));
    const naive = bootstrapInterval(y.length, (ix) => rocAuc(ix.map((i) => y[i]!), ix.map((i) => ties[i]!)), { seed: 9, resamples: 200 }, [neg, pos]);
    expect(bootstrapAuc(y, ties, { seed: 9, resamples: 200 })).toEqual(naive);
    const plain = bootstrapInterval(y.length, (ix) => rocAuc(ix.map((i) => y[i]!), ix.map((i) => ties[i]!)), { seed: 9, resamples: 200 });
    expect(bootstrapAuc(y, ties, { seed: 9, resamples: 200, stratified: false })).toEqual(plain);
  });
  it('accuracy interval is close to the normal approximation', () => {
    const r = bootstrapAccuracy(y, pred, { resamples: 2000 });
    const se = Math.sqrt((r.estimate * (1 - r.estimate)) / y.length);
    expect(Math.abs(r.upper - r.lower - 2 * 1.96 * se)).toBeLessThan(0.25 * 2 * 1.96 * se);
    expect(r.seed).toBe(20240611);
    expect(r.method).toBe('percentile');
  });
  it('generator is uniform enough', () => {
    const g = seededRandom(1);
    let sum = 0;
    for (let i = 0; i < 100_000; i++) sum += g();
    expect(Math.abs(sum / 100_000 - 0.5)).toBeLessThan(0.005);
  });
});
