import { npMean } from '../coco/numeric.js';
import { precook, type NgramCounts } from './ngrams.js';

/** CIDEr-D as pycocoevalcap's `Cider()` computes it (what COCO reports as "CIDEr"). */
export interface CiderResult {
  /** Mean over images. */
  score: number;
  /** Per-image CIDEr-D, in input order. */
  perImage: number[];
}

interface TfIdf {
  vec: Map<string, number>[];
  norm: number[];
  /** pycocoevalcap counts the candidate's *bigrams* here (its `if n == 1`), not its words. */
  length: number;
}

/**
 * CIDEr-D as pycocoevalcap's `CiderScorer` (n = 1..4, sigma = 6): tf-idf vectors with document
 * frequencies counted over the references of the evaluated set, idf = log(#images) − log(max(1, df)),
 * clipped cosine similarity per n, Gaussian length penalty, mean over n, mean over references, ×10.
 * Document frequencies depend on the whole set, so per-image scores do too; one image gives 0.
 */
export function ciderD(
  hyps: readonly string[],
  refs: readonly (readonly string[])[],
  n = 4,
  sigma = 6,
  cook: (s: string) => NgramCounts = (s) => precook(s, n),
): CiderResult {
  const crefs: NgramCounts[][] = refs.map((rs) => rs.map(cook));
  const ctest: NgramCounts[] = hyps.map(cook);
  // Document frequency: in how many images' reference sets each n-gram occurs.
  const df = new Map<string, number>();
  for (const rs of crefs) {
    const seen = new Set<string>();
    for (const r of rs) for (const g of r.grams) for (const key of g.keys()) seen.add(key);
    for (const key of seen) df.set(key, (df.get(key) ?? 0) + 1);
  }
  const refLen = Math.log(crefs.length);
  const toVec = (c: NgramCounts): TfIdf => {
    const vec: Map<string, number>[] = [];
    const norm: number[] = [];
    let length = 0;
    for (let k = 0; k < n; k++) {
      const v = new Map<string, number>();
      let sq = 0;
      for (const [key, tf] of c.grams[k]!) {
        const w = tf * (refLen - Math.log(Math.max(1, df.get(key) ?? 0)));
        v.set(key, w);
        sq += w ** 2;
        if (k === 1) length += tf;
      }
      vec.push(v);
      norm.push(Math.sqrt(sq));
    }
    return { vec, norm, length };
  };
  const perImage: number[] = [];
  for (let i = 0; i < ctest.length; i++) {
    const h = toVec(ctest[i]!);
    const score = new Array<number>(n).fill(0);
    for (const rc of crefs[i]!) {
      const r = toVec(rc);
      const delta = h.length - r.length;
      const penalty = Math.E ** (-(delta ** 2) / (2 * sigma ** 2));
      for (let k = 0; k < n; k++) {
        let val = 0;
        const rv = r.vec[k]!;
        for (const [key, wh] of h.vec[k]!) {
          const wr = rv.get(key) ?? 0;
          val += Math.min(wh, wr) * wr;
        }
        if (h.norm[k] !== 0 && r.norm[k] !== 0) val /= h.norm[k]! * r.norm[k]!;
        score[k] = score[k]! + val * penalty;
      }
    }
    let avg = npMean(score);
    avg /= crefs[i]!.length;
    avg *= 10;
    perImage.push(avg);
  }
  return { score: npMean(perImage), perImage };
}
