/**
 * Next-token selection, in transformers' order (4.38 `generate`): repetition penalty (a logits
 * processor), then the warpers temperature -> top-k -> top-p, then softmax and a draw. All filter math is
 * float64.
 */
import { Xoshiro128 } from '@kestrel/core';

/** Filter settings for one step. */
export interface SamplingParams {
  /** 0 = greedy (argmax); otherwise logits are divided by it */
  temperature: number;
  /** keep the k most probable ids (0 = off) */
  topK: number;
  /** nucleus: keep the smallest set of most probable ids whose mass reaches topP (1 = off) */
  topP: number;
  /** > 1 discourages ids already in the sequence (CTRL-style, as transformers); 1 = off */
  repetitionPenalty: number;
}

/** Apply the repetition penalty in place to the ids present in `seen` (each id once). */
export function applyRepetitionPenalty(logits: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const v = logits[id]!;
    logits[id] = v < 0 ? v * penalty : v / penalty;
  }
}

/**
 * The sampling distribution after temperature, top-k and top-p (as `TopPLogitsWarper`: stable
 * ascending sort, remove ids whose ascending cumulative mass is <= 1 - topP, never the most probable),
 * renormalised; removed ids are exactly 0.
 */
export function samplingProbs(logits: ArrayLike<number>, p: Pick<SamplingParams, 'temperature' | 'topK' | 'topP'>): Float64Array {
  const V = logits.length;
  const x = new Float64Array(V);
  const t = p.temperature > 0 ? p.temperature : 1;
  for (let i = 0; i < V; i++) x[i] = logits[i]! / t;
  if (p.topK > 0 && p.topK < V) {
    const sorted = Float64Array.from(x).sort();
    const kth = sorted[V - p.topK]!;
    for (let i = 0; i < V; i++) if (x[i]! < kth) x[i] = -Infinity;
  }
  if (p.topP < 1) {
    let mx = -Infinity;
    for (let i = 0; i < V; i++) if (x[i]! > mx) mx = x[i]!;
    let z = 0;
    for (let i = 0; i < V; i++) z += Math.exp(x[i]! - mx);
    const cut = 1 - p.topP;
    // Ids far below the max (p < e^-40 each) sit at the bottom of the ascending order; when their total
    // mass is below the cut they are all removed whatever their order, so only the rest is sorted
    // (a 100k-entry sort per token would cost more than the decode step).
    let tiny = 0;
    const cand: number[] = [];
    for (let i = 0; i < V; i++) {
      if (x[i]! < mx - 40) tiny += Math.exp(x[i]! - mx) / z;
      else cand.push(i);
    }
    const partial = tiny < cut * 0.5 && cand.length < V;
    const order = partial ? cand : Array.from({ length: V }, (_, i) => i);
    // stable ascending order: equal values keep index order
    order.sort((a, b) => x[a]! - x[b]! || a - b);
    if (partial) for (let i = 0; i < V; i++) if (x[i]! < mx - 40) x[i] = -Infinity;
    let c = partial ? tiny : 0;
    for (let j = 0; j < order.length - 1; j++) {
      const id = order[j]!;
      c += Math.exp(x[id]! - mx) / z;
      if (c <= cut) x[id] = -Infinity;
    }
  }
  let mx = -Infinity;
  for (let i = 0; i < V; i++) if (x[i]! > mx) mx = x[i]!;
  const probs = new Float64Array(V);
  let z = 0;
  for (let i = 0; i < V; i++) { const e = x[i] === -Infinity ? 0 : Math.exp(x[i]! - mx); probs[i] = e; z += e; }
  for (let i = 0; i < V; i++) probs[i] = probs[i]! / z;
  return probs;
}

/** Index of the largest value (first one on ties, as torch.argmax). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** The seeded PRNG of sampling (xoshiro128**, 53-bit doubles in [0, 1)). */
export const SeededRandom = Xoshiro128;
export type SeededRandom = Xoshiro128;

/** Draw an id from a probability vector. */
export function sampleFrom(probs: Float64Array, rng: SeededRandom): number {
  const u = rng.next();
  let c = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! <= 0) continue;
    c += probs[i]!;
    last = i;
    if (u < c) return i;
  }
  return last; // rounding: u beyond the accumulated mass
}

/** Pick the next token from one row of logits. */
export function pickToken(logits: ArrayLike<number>, p: SamplingParams, seen: Iterable<number>, rng: SeededRandom): number {
  const x = Float64Array.from(logits as ArrayLike<number>);
  applyRepetitionPenalty(x, seen, p.repetitionPenalty);
  if (p.temperature === 0) return argmax(x);
  return sampleFrom(samplingProbs(x, p), rng);
}
