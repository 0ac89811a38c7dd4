/** `COCOeval.summarize`: the 12 (bbox/segm) or 10 (keypoints) means and pycocotools' summary lines. */
import { z } from 'zod';
import { KestrelError } from '@kestrel/core';
import type { AccumulatedEval } from './accumulate-steps.js';
import { formatFixed, npMean, type NumpySumOrder } from './numeric.js';
import type { CocoParams } from './params.js';

/** Summary numbers and the lines pycocotools prints for them. */
export interface SummaryResult {
  stats: number[];
  lines: string[];
}

/** The numpy summation order of the means (see {@link NumpySumOrder}); `'blocked'` unless given. */
export const numpySumOrderSchema = z.enum(['blocked', 'pairwise']).default('blocked');

/** Validate the numpy summation order (E_OPTIONS), `'blocked'` when absent. */
export function checkNumpySum(v: unknown): NumpySumOrder {
  const r = numpySumOrderSchema.safeParse(v);
  if (!r.success) throw new KestrelError('E_OPTIONS', `numpySum must be "blocked" (numpy < 2.3) or "pairwise" (numpy >= 2.3); got ${JSON.stringify(v)}`);
  return r.data;
}

/** pycocotools' `summarize()` over accumulated arrays, means summed in `order`. */
export function summarizeEval(ev: AccumulatedEval, p: CocoParams, order: NumpySumOrder): SummaryResult {
  checkNumpySum(order);
  const lines: string[] = [];
  const [T, R, K, A, M] = ev.counts;
  const summ = (ap: boolean, iouThr: number | null, areaRng: string, maxDets: number): number => {
    const aind: number[] = [];
    p.areaRngLbl.forEach((l, i) => { if (l === areaRng) aind.push(i); });
    const mind: number[] = [];
    p.maxDets.forEach((d, i) => { if (d === maxDets) mind.push(i); });
    const tsel: number[] = [];
    if (iouThr === null) for (let t = 0; t < T; t++) tsel.push(t);
    else p.iouThrs.forEach((v, i) => { if (v === iouThr) tsel.push(i); });
    // Fancy indexing s[..., aind, mind] pairs the two index lists (numpy broadcasting).
    const am: [number, number][] = [];
    if (aind.length === mind.length) aind.forEach((a, i) => am.push([a, mind[i]!]));
    else if (aind.length === 1) mind.forEach((m) => am.push([aind[0]!, m]));
    else if (mind.length === 1) aind.forEach((a) => am.push([a, mind[0]!]));
    else throw new KestrelError('E_OPTIONS', `areaRngLbl "${areaRng}" and maxDets ${maxDets} match lists that cannot be broadcast together`);
    const vals: number[] = [];
    if (ap) {
      for (const t of tsel) for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) for (const [a, m] of am) {
        const v = ev.precision[(((t * R + r) * K + k) * A + a) * M + m]!;
        if (v > -1) vals.push(v);
      }
    } else {
      for (const t of tsel) for (let k = 0; k < K; k++) for (const [a, m] of am) {
        const v = ev.recall[((t * K + k) * A + a) * M + m]!;
        if (v > -1) vals.push(v);
      }
    }
    // np.mean(s[s > -1]): numpy's blocked order, not a plain or whole-array pairwise sum.
    const mean = vals.length === 0 ? -1 : npMean(vals, order);
    const title = ap ? 'Average Precision' : 'Average Recall';
    const type = ap ? '(AP)' : '(AR)';
    const iouStr = iouThr === null
      ? `${formatFixed(p.iouThrs[0]!, 2)}:${formatFixed(p.iouThrs[p.iouThrs.length - 1]!, 2)}`
      : formatFixed(iouThr, 2);
    lines.push(` ${title.padEnd(18)} ${type} @[ IoU=${iouStr.padEnd(9)} | area=${areaRng.padStart(6)} | maxDets=${String(maxDets).padStart(3)} ] = ${formatFixed(mean, 3)}`);
    return mean;
  };
  let stats: number[];
  if (p.iouType === 'keypoints') {
    stats = [
      summ(true, null, 'all', 20), summ(true, 0.5, 'all', 20), summ(true, 0.75, 'all', 20),
      summ(true, null, 'medium', 20), summ(true, null, 'large', 20),
      summ(false, null, 'all', 20), summ(false, 0.5, 'all', 20), summ(false, 0.75, 'all', 20),
      summ(false, null, 'medium', 20), summ(false, null, 'large', 20),
    ];
  } else {
    if (p.maxDets.length < 3) throw new KestrelError('E_OPTIONS', `the bbox/segm summary needs 3 maxDets values (pycocotools reads maxDets[2]); got [${p.maxDets.join(', ')}]`);
    const [m0, m1, m2] = p.maxDets as [number, number, number];
    stats = [
      summ(true, null, 'all', 100), summ(true, 0.5, 'all', m2), summ(true, 0.75, 'all', m2),
      summ(true, null, 'small', m2), summ(true, null, 'medium', m2), summ(true, null, 'large', m2),
      summ(false, null, 'all', m0), summ(false, null, 'all', m1), summ(false, null, 'all', m2),
      summ(false, null, 'small', m2), summ(false, null, 'medium', m2), summ(false, null, 'large', m2),
    ];
  }
  return { stats, lines };
}
