import { describe, expect, it } from 'vitest';
import { stratifiedSplit } from './split.js';
import { trainLogistic, predictLogistic } from './logistic.js';
import { trainMlp, predictMlp } from './mlp.js';
import { binaryBenchReport } from './report.js';
import { seededRandom } from './random.js';
import { greedyCoreset, imageScore, smoothMap } from '../defects/patchcore.js';

describe('stratified split', () => {
  it('keeps class proportions, covers every item once and is reproducible', () => {
    const strata = [...Array(90).fill('a'), ...Array(10).fill('b')];
    const [tr, cal] = stratifiedSplit(strata, [0.8, 0.2], 7);
    expect(tr!.length + cal!.length).toBe(100);
    expect(new Set([...tr!, ...cal!]).size).toBe(100);
    expect(cal!.filter((i) => strata[i] === 'b')).toHaveLength(2);
    expect(cal!.filter((i) => strata[i] === 'a')).toHaveLength(18);
    expect(stratifiedSplit(strata, [0.8, 0.2], 7)).toEqual([tr, cal]);
    expect(stratifiedSplit(strata, [0.8, 0.2], 8)).not.toEqual([tr, cal]);
  });

  it('rejects fractions that do not sum to 1', () => {
    expect(() => stratifiedSplit(['a'], [0.5, 0.2], 1)).toThrow(/sum to 1/);
  });
});

describe('logistic head', () => {
  it('separates two Gaussian clouds and ignores a noise feature', () => {
    const r = seededRandom(3);
    const x: Float32Array[] = [];
    const y: Array<0 | 1> = [];
    for (let i = 0; i < 200; i++) {
      const c = i % 4 === 0 ? 1 : 0; // imbalanced, like the X-ray training split inverted
      x.push(Float32Array.of(c * 3 + r() - 0.5, r() * 10));
      y.push(c);
    }
    const head = trainLogistic(x, y, { l2: 1e-3, steps: 300 });
    expect(predictLogistic(head, Float32Array.of(3, 5))).toBeGreaterThan(0.9);
    expect(predictLogistic(head, Float32Array.of(0, 5))).toBeLessThan(0.1);
    expect(Math.abs(head.weights[0]!)).toBeGreaterThan(10 * Math.abs(head.weights[1]!));
  });

  it('refuses one-class data and wrong feature sizes', () => {
    expect(() => trainLogistic([Float32Array.of(1)], [1])).toThrow(/both classes/);
    const head = trainLogistic([Float32Array.of(0), Float32Array.of(1)], [0, 1]);
    expect(() => predictLogistic(head, Float32Array.of(1, 2))).toThrow(/expects 1 features/);
  });
});

describe('MLP head', () => {
  it('learns XOR, which no linear head can', () => {
    const r = seededRandom(5);
    const x: Float32Array[] = [];
    const y: Array<0 | 1> = [];
    for (let i = 0; i < 200; i++) {
      const a = r() < 0.5 ? 0 : 1, b = r() < 0.5 ? 0 : 1;
      x.push(Float32Array.of(a + (r() - 0.5) * 0.2, b + (r() - 0.5) * 0.2));
      y.push((a ^ b) as 0 | 1);
    }
    const mlp = trainMlp(x, y, { hidden: 8, l2: 1e-4, steps: 400, learningRate: 0.03, seed: 2 });
    const correct = x.filter((v, i) => (predictMlp(mlp, v) >= 0.5 ? 1 : 0) === y[i]).length;
    expect(correct / x.length).toBeGreaterThan(0.95);
    const lin = trainLogistic(x, y, { l2: 1e-4, steps: 300 });
    const linCorrect = x.filter((v, i) => (predictLogistic(lin, v) >= 0.5 ? 1 : 0) === y[i]).length;
    expect(linCorrect / x.length).toBeLessThan(0.8);
    // Same seed, same network.
    expect(trainMlp(x, y, { hidden: 8, steps: 5, seed: 2 }).w1).toEqual(trainMlp(x, y, { hidden: 8, steps: 5, seed: 2 }).w1);
  });
});

describe('bench report (hand-computed)', () => {
  // 3 negatives (0.1, 0.6, 0.3), 2 positives (0.8, 0.4); threshold 0.5 calls 0.6 and 0.8 positive.
  const y: Array<0 | 1> = [0, 0, 0, 1, 1];
  const s = [0.1, 0.6, 0.3, 0.8, 0.4];
  const r = binaryBenchReport(y, s, 0.5, ['good', 'defective']);

  it('counts, accuracy and AUC', () => {
    expect(r.confusion).toEqual({ tp: 1, fp: 1, tn: 2, fn: 1 });
    expect(r.confusionMatrix.matrix).toEqual([[2, 1], [1, 1]]);
    expect(r.accuracy.estimate).toBeCloseTo(3 / 5, 12);
    // Pairs (pos > neg): 0.8 beats all 3, 0.4 beats 0.1 and 0.3 -> 5 of 6.
    expect(r.auc!.estimate).toBeCloseTo(5 / 6, 12);
    expect(r.auc!.lower).toBeLessThanOrEqual(r.auc!.estimate);
    expect(r.auc!.upper).toBeGreaterThanOrEqual(r.auc!.estimate);
  });

  it('exact Clopper-Pearson intervals for FPR 1/3 and TPR 1/2', () => {
    expect(r.fpr).toBeCloseTo(1 / 3, 12);
    // k = 1, n = 3: lower = Beta(1, 3) quantile 0.025 = 1 - 0.975^(1/3); upper = Beta(2, 2) quantile 0.975.
    expect(r.fprInterval!.lower).toBeCloseTo(1 - 0.975 ** (1 / 3), 6);
    // Beta(2, 2) CDF is 3x^2 - 2x^3; solve = 0.975 by bisection here.
    let lo = 0, hi = 1;
    for (let i = 0; i < 60; i++) { const m = (lo + hi) / 2; if (3 * m * m - 2 * m ** 3 < 0.975) lo = m; else hi = m; }
    expect(r.fprInterval!.upper).toBeCloseTo(lo, 6);
    // One-sided 95 % upper bound for 1/3: Beta(2, 2) quantile 0.95.
    lo = 0; hi = 1;
    for (let i = 0; i < 60; i++) { const m = (lo + hi) / 2; if (3 * m * m - 2 * m ** 3 < 0.95) lo = m; else hi = m; }
    expect(r.fprUpper95).toBeCloseTo(lo, 6);
    // k = 1, n = 2: lower = 1 - sqrt(0.975), upper = sqrt(0.975).
    expect(r.tpr).toBe(0.5);
    expect(r.tprInterval!.lower).toBeCloseTo(1 - Math.sqrt(0.975), 6);
    expect(r.tprInterval!.upper).toBeCloseTo(Math.sqrt(0.975), 6);
  });

  it('has no AUC or TPR with one class only', () => {
    const only = binaryBenchReport([0, 0, 0], [0.1, 0.2, 0.9], 0.5, ['good', 'defective']);
    expect(only.auc).toBeNull();
    expect(only.tpr).toBeNull();
    expect(only.fpr).toBeCloseTo(1 / 3, 12);
  });
});

describe('PatchCore pieces', () => {
  it('greedy coreset picks far-apart points first', () => {
    // Two tight clusters far apart: a 2-point coreset must take one from each.
    const rows = Float32Array.from([0, 0, 0.01, 0, 0, 0.01, 10, 10, 10.01, 10, 10, 10.01]);
    const c = greedyCoreset(rows, 2, 2, { seed: 1, projDim: 2 });
    const cluster = (i: number): number => (rows[i * 2]! > 5 ? 1 : 0);
    expect(new Set(c.map(cluster)).size).toBe(2);
    expect(greedyCoreset(rows, 2, 10, { seed: 1 })).toHaveLength(6);
  });

  it('image score ignores the border cells', () => {
    const map = new Float32Array(25).fill(1);
    map[0] = 9; // corner: outside a 1-cell border
    map[12] = 3; // centre
    expect(imageScore(map, 5, 5, 0)).toBe(9);
    expect(imageScore(map, 5, 5, 1)).toBe(3);
    expect(imageScore(map, 5, 5, 10)).toBe(3); // clamped: the centre always counts
  });

  it('smoothing keeps a constant map and spreads a peak', () => {
    expect(Array.from(smoothMap(new Float32Array(9).fill(2), 3, 3))).toEqual(new Array(9).fill(2));
    const peak = new Float32Array(9);
    peak[4] = 16;
    const s = smoothMap(peak, 3, 3);
    expect(s[4]).toBe(4);
    expect(s[0]).toBe(1);
    expect(s[1]).toBe(2);
  });
});
