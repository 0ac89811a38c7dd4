import { KestrelError } from '@kestrel/core';

/** A logistic-regression head on standardised features. */
export interface LogisticHead {
  /** Per-feature mean and standard deviation used to standardise inputs. */
  mean: Float32Array;
  std: Float32Array;
  weights: Float32Array;
  bias: number;
}

/** Options of {@link trainLogistic}. */
export interface LogisticOptions {
  /** L2 penalty on the weights (on standardised features). */
  l2: number;
  /** Full-batch Adam steps. */
  steps: number;
  learningRate: number;
  /** Weight classes inversely to their frequency, so the decision at 0.5 does not follow the training prevalence. */
  balanced: boolean;
}

const DEFAULTS: LogisticOptions = { l2: 1e-2, steps: 400, learningRate: 0.05, balanced: true };

/**
 * Fit a logistic-regression head (binary cross-entropy + L2) with full-batch Adam. Deterministic:
 * weights start at zero and the objective is convex, so the same data give the same head.
 */
export function trainLogistic(x: readonly Float32Array[], y: readonly number[], options: Partial<LogisticOptions> = {}): LogisticHead {
  const o = { ...DEFAULTS, ...options };
  const n = x.length;
  if (n === 0 || n !== y.length) throw new KestrelError('E_DATA_FORMAT', `need one label per feature vector and at least one sample (got ${n} vectors, ${y.length} labels)`);
  const pos = y.filter((v) => v === 1).length;
  if (pos === 0 || pos === n) throw new KestrelError('E_DATA_FORMAT', `training data must contain both classes (got ${pos} positive of ${n})`);
  const d = x[0]!.length;
  const mean = new Float32Array(d);
  const std = new Float32Array(d);
  for (const v of x) for (let j = 0; j < d; j++) mean[j] += v[j]! / n;
  for (const v of x) for (let j = 0; j < d; j++) std[j] += (v[j]! - mean[j]!) ** 2 / n;
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]!) || 1;
  const z = x.map((v) => {
    const r = new Float32Array(d);
    for (let j = 0; j < d; j++) r[j] = (v[j]! - mean[j]!) / std[j]!;
    return r;
  });
  const wPos = o.balanced ? n / (2 * pos) : 1;
  const wNeg = o.balanced ? n / (2 * (n - pos)) : 1;
  const w = new Float64Array(d + 1); // last = bias
  const m1 = new Float64Array(d + 1);
  const m2 = new Float64Array(d + 1);
  const g = new Float64Array(d + 1);
  const b1 = 0.9, b2 = 0.999, eps = 1e-8;
  let norm = 0;
  for (let i = 0; i < n; i++) norm += y[i] === 1 ? wPos : wNeg;
  for (let step = 1; step <= o.steps; step++) {
    g.fill(0);
    for (let i = 0; i < n; i++) {
      const zi = z[i]!;
      let s = w[d]!;
      for (let j = 0; j < d; j++) s += w[j]! * zi[j]!;
      const p = 1 / (1 + Math.exp(-s));
      const err = (p - y[i]!) * (y[i] === 1 ? wPos : wNeg);
      for (let j = 0; j < d; j++) g[j] += err * zi[j]!;
      g[d] += err;
    }
    for (let j = 0; j <= d; j++) {
      const gj = g[j]! / norm + (j < d ? o.l2 * w[j]! : 0);
      m1[j] = b1 * m1[j]! + (1 - b1) * gj;
      m2[j] = b2 * m2[j]! + (1 - b2) * gj * gj;
      const mh = m1[j]! / (1 - b1 ** step);
      const vh = m2[j]! / (1 - b2 ** step);
      w[j] -= (o.learningRate * mh) / (Math.sqrt(vh) + eps);
    }
  }
  return { mean, std, weights: Float32Array.from(w.subarray(0, d)), bias: w[d]! };
}

/** Probability of the positive class for one feature vector. */
export function predictLogistic(head: LogisticHead, x: Float32Array): number {
  const d = head.weights.length;
  if (x.length !== d) throw new KestrelError('E_CHECKPOINT_FORMAT', `the head expects ${d} features, the backbone produced ${x.length}; the model and backbone do not match`);
  let s = head.bias;
  for (let j = 0; j < d; j++) s += (head.weights[j]! * (x[j]! - head.mean[j]!)) / head.std[j]!;
  return 1 / (1 + Math.exp(-s));
}
