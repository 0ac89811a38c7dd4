import { precook, type NgramCounts } from './ngrams.js';

/** Corpus BLEU-1..n with per-image scores, as pycocoevalcap's `Bleu(n)` reports them. */
export interface BleuResult {
  /** Corpus-level BLEU-1..n (cumulative geometric means with one corpus brevity penalty). */
  scores: number[];
  /** `perImage[k][i]`: BLEU-(k+1) of image i, with its own brevity penalty. */
  perImage: number[][];
  /** Total candidate length and total effective ('closest') reference length. */
  testlen: number;
  reflen: number;
}

// BleuScorer's smoothing: `tiny` keeps log/0 away when nothing matches, `small` avoids 0/0.
const SMALL = 1e-9;
const TINY = 1e-15;

/**
 * BLEU as pycocoevalcap's `BleuScorer.compute_score(option='closest')`: clipped n-gram counts against
 * the per-n-gram maximum over references, effective reference length = the reference length closest to
 * the candidate's (ties → the shorter), corpus totals for the corpus score, and per-sentence scores
 * with the same tiny/small smoothing and a per-sentence brevity penalty.
 *
 * @param hyps one tokenized candidate per image (words separated by spaces)
 * @param refs the tokenized references of each image (at least one each)
 * @param cook n-gram counter (pass a shared {@link precookCache} to count each sentence once)
 */
export function bleuScore(
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
  n = 4,
  cook: (s: string) => NgramCounts = (s) => precook(s, n),
): BleuResult {
  const guessTot = new Array<number>(n).fill(0);
  const correctTot = new Array<number>(n).fill(0);
  const perImage: number[][] = Array.from({ length: n }, () => []);
  let testlenTot = 0;
  let reflenTot = 0;
  for (let i = 0; i < hyps.length; i++) {
    // cook_refs: reference lengths and the max count of every n-gram over the references.
    const reflens: number[] = [];
    const maxcounts = new Map<string, number>();
    for (const r of refs[i]!) {
      const c = cook(r);
      reflens.push(c.length);
      for (const g of c.grams) for (const [key, cnt] of g) maxcounts.set(key, Math.max(maxcounts.get(key) ?? 0, cnt));
    }
    // cook_test
    const t = cook(hyps[i]!);
    const testlen = t.length;
    let reflen = reflens[0]!;
    for (const l of reflens) {
      const d = Math.abs(l - testlen);
      const best = Math.abs(reflen - testlen);
      if (d < best || (d === best && l < reflen)) reflen = l;
    }
    const guess: number[] = [];
    const correct: number[] = [];
    for (let k = 0; k < n; k++) {
      guess.push(Math.max(0, testlen - k));
      let c = 0;
      for (const [key, cnt] of t.grams[k]!) c += Math.min(maxcounts.get(key) ?? 0, cnt);
      correct.push(c);
    }
    testlenTot += testlen;
    reflenTot += reflen;
    let b = 1;
    for (let k = 0; k < n; k++) {
      guessTot[k] = guessTot[k]! + guess[k]!;
      correctTot[k] = correctTot[k]! + correct[k]!;
      b *= (correct[k]! + TINY) / (guess[k]! + SMALL);
      perImage[k]!.push(b ** (1 / (k + 1)));
    }
    const ratio = (testlen + TINY) / (reflen + SMALL);
    if (ratio < 1) {
      const bp = Math.exp(1 - 1 / ratio);
      for (let k = 0; k < n; k++) perImage[k]![i] = perImage[k]![i]! * bp;
    }
  }
  const scores: number[] = [];
  let b = 1;
  for (let k = 0; k < n; k++) {
    b *= (correctTot[k]! + TINY) / (guessTot[k]! + SMALL);
    scores.push(b ** (1 / (k + 1)));
  }
  const ratio = (testlenTot + TINY) / (reflenTot + SMALL);
  if (ratio < 1) {
    const bp = Math.exp(1 - 1 / ratio);
    for (let k = 0; k < n; k++) scores[k] = scores[k]! * bp;
  }
  return { scores, perImage, testlen: testlenTot, reflen: reflenTot };
}
