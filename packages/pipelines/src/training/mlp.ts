import { KestrelError } from '@kestrel/core';
import { seededRandom } from './random.js';

/** A one-hidden-layer ReLU network on standardised features. */
export interface MlpHead {
  mean: Float32Array;
  std: Float32Array;
  /** [hidden, inputs] row-major. */
  w1: Float32Array;
  b1: Float32Array;
  w2: Float32Array;
  b2: number;
}

/** Options of {@link trainMlp}. */
export interface MlpOptions {
  hidden: number;
  /** L2 penalty on both weight matrices. */
  l2: number;
  steps: number;
  learningRate: number;
  seed: number;
}

const DEFAULTS: MlpOptions = { hidden: 32, l2: 1e-2, steps: 150, learningRate: 3e-3, seed: 1 };

/**
 * Fit a small MLP head (class-balanced binary cross-entropy + L2, full-batch Adam, seeded Glorot
 * initialisation), deterministic for a given seed.
 */
export function trainMlp(x: readonly Float32Array[], y: readonly number[], options: Partial<MlpOptions> = {}): MlpHead {
  const o = { ...DEFAULTS, ...options };
  const n = x.length;
  if (n === 0 || n !== y.length) throw new KestrelError('E_DATA_FORMAT', `need one label per feature vector (got ${n} vectors, ${y.length} labels)`);
  const pos = y.filter((v) => v === 1).length;
  if (pos === 0 || pos === n) throw new KestrelError('E_DATA_FORMAT', `training data must contain both classes (got ${pos} positive of ${n})`);
  const d = x[0]!.length, H = o.hidden;
  const mean = new Float32Array(d), std = new Float32Array(d);
  for (const v of x) for (let j = 0; j < d; j++) mean[j] += v[j]! / n;
  for (const v of x) for (let j = 0; j < d; j++) std[j] += (v[j]! - mean[j]!) ** 2 / n;
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]!) || 1;
  const z = x.map((v) => Float32Array.from(v, (t, j) => (t - mean[j]!) / std[j]!));
  const rand = seededRandom(o.seed);
  const a1 = Math.sqrt(6 / (d + H)), a2 = Math.sqrt(6 / (H + 1));
  const w1 = Float64Array.from({ length: H * d }, () => (rand() * 2 - 1) * a1);
  const b1 = new Float64Array(H);
  const w2 = Float64Array.from({ length: H }, () => (rand() * 2 - 1) * a2);
  const b2 = new Float64Array(1);
  const params = [w1, b1, w2, b2];
  const m = params.map((p) => new Float64Array(p.length));
  const v = params.map((p) => new Float64Array(p.length));
  const g = params.map((p) => new Float64Array(p.length));
  const wPos = n / (2 * pos), wNeg = n / (2 * (n - pos));
  const h = new Float64Array(H);
  for (let t = 1; t <= o.steps; t++) {
    for (const gg of g) gg.fill(0);
    let norm = 0;
    for (let i = 0; i < n; i++) {
      const zi = z[i]!;
      let s = b2[0]!;
      for (let k = 0; k < H; k++) {
        let a = b1[k]!;
        const off = k * d;
        for (let j = 0; j < d; j++) a += w1[off + j]! * zi[j]!;
        h[k] = a > 0 ? a : 0;
        s += w2[k]! * h[k]!;
      }
      const p = 1 / (1 + Math.exp(-s));
      const w = y[i] === 1 ? wPos : wNeg;
      norm += w;
      const e = (p - y[i]!) * w;
      g[3]![0] += e;
      for (let k = 0; k < H; k++) {
        g[2]![k] += e * h[k]!;
        if (h[k]! > 0) {
          const eh = e * w2[k]!;
          g[1]![k] += eh;
          const off = k * d;
          for (let j = 0; j < d; j++) g[0]![off + j] += eh * zi[j]!;
        }
      }
    }
    for (let q = 0; q < params.length; q++) {
      const P = params[q]!, G = g[q]!, M = m[q]!, V = v[q]!;
      const decay = q === 0 || q === 2 ? o.l2 : 0;
      for (let j = 0; j < P.length; j++) {
        const gj = G[j]! / norm + decay * P[j]!;
        M[j] = 0.9 * M[j]! + 0.1 * gj;
        V[j] = 0.999 * V[j]! + 0.001 * gj * gj;
        P[j] -= (o.learningRate * (M[j]! / (1 - 0.9 ** t))) / (Math.sqrt(V[j]! / (1 - 0.999 ** t)) + 1e-8);
      }
    }
  }
  return { mean, std, w1: Float32Array.from(w1), b1: Float32Array.from(b1), w2: Float32Array.from(w2), b2: b2[0]! };
}

/** Probability of the positive class for one feature vector. */
export function predictMlp(head: MlpHead, x: Float32Array): number {
  const d = head.mean.length, H = head.b1.length;
  if (x.length !== d) throw new KestrelError('E_CHECKPOINT_FORMAT', `the head expects ${d} features, the backbone produced ${x.length}; the model and backbone do not match`);
  let s = head.b2;
  for (let k = 0; k < H; k++) {
    let a = head.b1[k]!;
    const off = k * d;
    for (let j = 0; j < d; j++) a += (head.w1[off + j]! * (x[j]! - head.mean[j]!)) / head.std[j]!;
    if (a > 0) s += head.w2[k]! * a;
  }
  return 1 / (1 + Math.exp(-s));
}
