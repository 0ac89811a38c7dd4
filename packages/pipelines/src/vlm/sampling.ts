import { z } from 'zod';

/** Generation options shared by the VLM APIs. */
export const GenerateOptionsSchema = z.object({
  /** Stop after this many new tokens. */
  maxNewTokens: z.number().int().positive().default(128),
  /** 0 = greedy (argmax); > 0 samples from softmax(logits / temperature). */
  temperature: z.number().min(0).default(0),
  /** Nucleus sampling: keep the most probable ids whose total probability reaches topP (1 = off). */
  topP: z.number().gt(0).max(1).default(1),
  /** Keep only the topK most probable ids (0 = off). */
  topK: z.number().int().min(0).default(0),
  /** Stop at the end-of-sequence token (it is not included in the output). */
  stopOnEos: z.boolean().default(true),
  /** Seed of the sampling RNG (sampling is reproducible for a given seed). */
  seed: z.number().int().optional(),
});
export type GenerateOptions = z.input<typeof GenerateOptionsSchema>;
export type ResolvedGenerateOptions = z.output<typeof GenerateOptionsSchema>;

/** Index of the largest value (first on ties, as torch.argmax). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** mulberry32: small, fast, seedable; good enough to draw tokens. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Choose the next token from one row of logits: greedy at temperature 0, else temperature → top-k →
 * top-p (transformers' warper order; an id is kept when the probability ranked above it is < topP) and
 * a draw from the renormalised distribution, in float64.
 */
export function chooseToken(logits: ArrayLike<number>, o: ResolvedGenerateOptions, rng: () => number): number {
  if (o.temperature === 0) return argmax(logits);
  const n = logits.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  const keep = o.topK > 0 ? Math.min(o.topK, n) : n;
  const mx = logits[order[0]!]! / o.temperature;
  const p = new Float64Array(keep);
  let sum = 0;
  for (let i = 0; i < keep; i++) { p[i] = Math.exp(logits[order[i]!]! / o.temperature - mx); sum += p[i]!; }
  let kept = keep;
  if (o.topP < 1) {
    let cum = 0;
    for (let i = 0; i < keep; i++) {
      if (i > 0 && cum >= o.topP) { kept = i; break; }
      cum += p[i]! / sum;
    }
  }
  let total = 0;
  for (let i = 0; i < kept; i++) total += p[i]!;
  let r = rng() * total;
  for (let i = 0; i < kept; i++) {
    r -= p[i]!;
    if (r < 0) return order[i]!;
  }
  return order[kept - 1]!;
}
