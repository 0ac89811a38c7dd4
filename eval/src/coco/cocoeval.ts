/**
 * `COCOeval`: pycocotools' `evaluate` / `accumulate` / `summarize` with the same semantics, down to
 * tie order (stable sorts), crowd handling and -1 for categories without GT. Per-image results are
 * kept as compact typed arrays (one code per IoU threshold and detection), and IoUs are computed per
 * image and category only, so memory stays proportional to the number of detections.
 */
import { KestrelError } from '@kestrel/core';
import { bbIou, rleIou } from '../mask/rle.js';
import type { COCO, CocoAnnotation } from './coco.js';
import { formatError } from './schema.js';
import { type CocoParams, type IouType, defaultParams, npUnique } from './params.js';
import { formatFixed, npSum, pairwiseSum } from './numeric.js';

/** `np.spacing(1)`. */
const EPS = 2.220446049250313e-16;

/** Per-detection outcome at one IoU threshold and area range. */
const IGNORED = 0, TP = 1, FP = 2;

/** Evaluation of one (image, category) pair over all area ranges (pycocotools' evalImgs, compacted). */
interface PairResult {
  /** Image index in `params.imgIds`. */
  img: number;
  /** Detections kept (sorted by score, at most maxDets[-1]). */
  nd: number;
  scores: Float64Array;
  /** `codes[(a*T + t)*nd + d]`: IGNORED / TP / FP. */
  codes: Uint8Array;
  /** Non-ignored GT count per area range. */
  npig: Int32Array;
}

/** Accumulated arrays (pycocotools' `self.eval`), flat in C order. */
export interface AccumulatedEval {
  /** `[T, R, K, A, M]`. */
  counts: [number, number, number, number, number];
  /** Precision, `[T][R][K][A][M]` flattened; -1 where a category has no GT. */
  precision: Float64Array;
  /** Recall, `[T][K][A][M]` flattened. */
  recall: Float64Array;
}

/** Stable order of detections by descending score (`np.argsort(-scores, kind='mergesort')`). */
function stableDescending(scores: readonly number[]): number[] {
  const idx = scores.map((_, i) => i);
  idx.sort((a, b) => (scores[b]! - scores[a]!) || (a - b));
  return idx;
}

/** Detection evaluator with pycocotools' semantics. */
export class COCOeval {
  readonly cocoGt: COCO;
  readonly cocoDt: COCO;
  params: CocoParams;
  /** Set by {@link accumulate}. */
  eval: AccumulatedEval | null = null;
  /** Set by {@link summarize}: 12 numbers (bbox/segm) or 10 (keypoints). */
  stats: number[] = [];
  /** Set by {@link summarize}: the summary lines pycocotools prints. */
  summaryLines: string[] = [];
  private pairs: PairResult[][] = [];
  private evaluated: CocoParams | null = null;

  /**
   * @param cocoGt ground truth
   * @param cocoDt results (from `cocoGt.loadRes(...)`)
   * @param iouType 'bbox', 'segm' or 'keypoints'
   */
  constructor(cocoGt: COCO, cocoDt: COCO, iouType: IouType = 'segm') {
    this.cocoGt = cocoGt;
    this.cocoDt = cocoDt;
    this.params = defaultParams(iouType);
    this.params.imgIds = [...cocoGt.getImgIds()].sort((a, b) => a - b);
    this.params.catIds = [...cocoGt.getCatIds()].sort((a, b) => a - b);
  }

  /** Per-image, per-category matching (`evaluate()`). */
  evaluate(): void {
    const p = this.params;
    checkParams(p);
    p.imgIds = npUnique(p.imgIds);
    if (p.useCats) p.catIds = npUnique(p.catIds);
    p.maxDets = [...p.maxDets].sort((a, b) => a - b);
    const useCats = !!p.useCats;
    const I = p.imgIds.length;
    const K = useCats ? p.catIds.length : 1;
    const imgIndex = new Map<number, number>();
    p.imgIds.forEach((id, i) => imgIndex.set(id, i));

    const gts = this.cocoGt.annotationsFor(p.imgIds, useCats ? p.catIds : []);
    const dts = this.cocoDt.annotationsFor(p.imgIds, useCats ? p.catIds : []);

    // Group by (image, category) in list order, as pycocotools' defaultdicts do.
    type Bucket = { g: CocoAnnotation[]; d: CocoAnnotation[] };
    const byImgCat = new Map<number, Map<number, Bucket>>();
    const bucket = (img: number, cat: number): Bucket => {
      let m = byImgCat.get(img);
      if (!m) byImgCat.set(img, (m = new Map()));
      let b = m.get(cat);
      if (!b) m.set(cat, (b = { g: [], d: [] }));
      return b;
    };
    for (const g of gts) bucket(g.image_id, g.category_id).g.push(g);
    for (const d of dts) bucket(d.image_id, d.category_id).d.push(d);

    const pairs: PairResult[][] = Array.from({ length: K }, () => []);
    const catIndex = new Map<number, number>();
    p.catIds.forEach((id, k) => { if (!catIndex.has(id)) catIndex.set(id, k); });
    for (let i = 0; i < I; i++) {
      const m = byImgCat.get(p.imgIds[i]!);
      if (!m) continue;
      if (useCats) {
        const ks: [number, Bucket][] = [];
        for (const [cat, b] of m) { const k = catIndex.get(cat); if (k !== undefined) ks.push([k, b]); }
        for (const [k, b] of ks) {
          const r = this.evaluatePair(i, b.g, b.d, b.g, b.d);
          if (r) pairs[k]!.push(r);
        }
      } else {
        // Labels ignored: concatenate in params.catIds order (duplicates included, as pycocotools does).
        const g: CocoAnnotation[] = [], d: CocoAnnotation[] = [];
        for (const c of p.catIds) { const b = m.get(c); if (b) { g.push(...b.g); d.push(...b.d); } }
        // computeOks looks up category -1 only, so keypoints without categories never match.
        const kb = m.get(-1);
        const r = p.iouType === 'keypoints' ? this.evaluatePair(i, g, d, kb?.g ?? [], kb?.d ?? []) : this.evaluatePair(i, g, d, g, d);
        if (r) pairs[0]!.push(r);
      }
    }
    this.pairs = pairs;
    this.evaluated = structuredClone(p);
    this.eval = null;
  }

  /** Evaluate one image for one category (or all, useCats=0) over every area range. */
  private evaluatePair(img: number, gt: CocoAnnotation[], dt: CocoAnnotation[], iouGt: CocoAnnotation[], iouDt: CocoAnnotation[]): PairResult | null {
    if (gt.length === 0 && dt.length === 0) return null;
    const p = this.params;
    const T = p.iouThrs.length, A = p.areaRng.length;
    const maxDet = p.maxDets[p.maxDets.length - 1]!;
    const order = stableDescending(dt.map((d) => d.score!)).slice(0, Math.max(0, maxDet));
    const dts = order.map((i) => dt[i]!);
    const D = dts.length, G = gt.length;
    const ious = this.computeIou(gt, dt, iouGt, iouDt, maxDet);
    // Shapes can only disagree for keypoints with useCats=0 (pycocotools would fail there); never match then.
    const hasIou = ious.length === D && D > 0 && G > 0 && ious[0]!.length === G;
    const iscrowd = gt.map((g) => (g.iscrowd ? 1 : 0));
    const baseIgnore = gt.map((g) => this.gtIgnore(g));
    const gtArea = gt.map((g) => this.num(this.cocoGt, g, 'area', g.area));
    const dtArea = dts.map((d) => this.num(this.cocoDt, d, 'area', d.area));
    const codes = new Uint8Array(A * T * D);
    const npig = new Int32Array(A);
    const gtIg = new Uint8Array(G);
    const gtm = new Uint8Array(T * G);
    const gIds: number[] = new Array(G);
    for (let a = 0; a < A; a++) {
      const [lo, hi] = p.areaRng[a]!;
      const ign = gt.map((g, j) => (baseIgnore[j] || gtArea[j]! < lo || gtArea[j]! > hi ? 1 : 0));
      // Non-ignored GT first, stable.
      const gtind: number[] = [];
      for (let j = 0; j < G; j++) if (!ign[j]) gtind.push(j);
      for (let j = 0; j < G; j++) if (ign[j]) gtind.push(j);
      let np = 0;
      for (let j = 0; j < G; j++) { gtIg[j] = ign[gtind[j]!]!; gIds[j] = gt[gtind[j]!]!.id; if (!gtIg[j]) np++; }
      npig[a] = np;
      gtm.fill(0);
      for (let t = 0; t < T; t++) {
        const thr = Math.min(p.iouThrs[t]!, 1 - 1e-10);
        const base = (a * T + t) * D;
        for (let d = 0; d < D; d++) {
          let m = -1;
          if (hasIou) {
            let best = thr;
            const row = ious[d]!;
            for (let j = 0; j < G; j++) {
              if (gtm[t * G + j] && !iscrowd[gtind[j]!]) continue;
              if (m > -1 && gtIg[m] === 0 && gtIg[j] === 1) break;
              const v = row[gtind[j]!]!;
              if (v < best) continue;
              best = v;
              m = j;
            }
          }
          let ignored = 0, matched = false;
          if (m > -1) {
            ignored = gtIg[m]!;
            matched = gIds[m] !== 0;
            gtm[t * G + m] = 1;
          }
          if (!matched && (dtArea[d]! < lo || dtArea[d]! > hi)) ignored = 1;
          codes[base + d] = ignored ? IGNORED : matched ? TP : FP;
        }
      }
    }
    return { img, nd: D, scores: Float64Array.from(dts, (d) => d.score!), codes, npig };
  }

  private gtIgnore(g: CocoAnnotation): number {
    const ig = g.iscrowd ? 1 : 0;
    if (this.params.iouType === 'keypoints') {
      const nk = this.num(this.cocoGt, g, 'num_keypoints', g.num_keypoints);
      return nk === 0 || ig ? 1 : 0;
    }
    return ig;
  }

  private num(c: COCO, a: CocoAnnotation, field: string, v: number | undefined): number {
    if (typeof v !== 'number') formatError(c.source, c.annPath(a, field), `missing (needed for ${this.params.iouType} evaluation)`);
    return v;
  }

  private box(c: COCO, a: CocoAnnotation): number[] {
    const b = a.bbox;
    if (!b || b.length !== 4) formatError(c.source, c.annPath(a, 'bbox'), `missing or not [x, y, w, h] (needed for ${this.params.iouType} evaluation)`);
    return b;
  }

  /** `computeIoU` / `computeOks`: `[D][G]` with GT in original order, dt sorted and truncated. */
  private computeIou(gt: CocoAnnotation[], dt: CocoAnnotation[], iouGt: CocoAnnotation[], iouDt: CocoAnnotation[], maxDet: number): number[][] {
    const p = this.params;
    if (p.iouType === 'keypoints') {
      const order = stableDescending(iouDt.map((d) => d.score!)).slice(0, Math.max(0, maxDet));
      return this.computeOks(iouGt, order.map((i) => iouDt[i]!));
    }
    if (gt.length === 0 && dt.length === 0) return [];
    const order = stableDescending(dt.map((d) => d.score!)).slice(0, Math.max(0, maxDet));
    const dts = order.map((i) => dt[i]!);
    if (dts.length === 0 || gt.length === 0) return [];
    const crowd = gt.map((g) => (g.iscrowd ? 1 : 0));
    if (p.iouType === 'segm') {
      return rleIou(dts.map((d) => this.cocoDt.annToRLE(d)), gt.map((g) => this.cocoGt.annToRLE(g)), crowd);
    }
    return bbIou(dts.map((d) => this.box(this.cocoDt, d)), gt.map((g) => this.box(this.cocoGt, g)), crowd);
  }

  private computeOks(gts: CocoAnnotation[], dts: CocoAnnotation[]): number[][] {
    if (gts.length === 0 || dts.length === 0) return [];
    const sigmas = this.params.kpt_oks_sigmas;
    if (!sigmas || sigmas.length === 0) throw new KestrelError('E_OPTIONS', 'kpt_oks_sigmas must be set for keypoints evaluation');
    const k = sigmas.length;
    const vars = sigmas.map((s) => (s * 2) * (s * 2));
    const kp = (c: COCO, a: CocoAnnotation): number[] => {
      const v = a.keypoints;
      if (!v || Math.ceil(v.length / 3) !== k) formatError(c.source, c.annPath(a, 'keypoints'), `missing or not ${k} (x, y, v) triples (one per kpt_oks_sigmas entry)`);
      return v;
    };
    const ious: number[][] = dts.map(() => new Array<number>(gts.length).fill(0));
    const e = new Float64Array(k);
    for (let j = 0; j < gts.length; j++) {
      const gt = gts[j]!;
      const g = kp(this.cocoGt, gt);
      let k1 = 0;
      for (let n = 0; n < k; n++) if (g[n * 3 + 2]! > 0) k1++;
      const bb = this.box(this.cocoGt, gt);
      const x0 = bb[0]! - bb[2]!, x1 = bb[0]! + bb[2]! * 2;
      const y0 = bb[1]! - bb[3]!, y1 = bb[1]! + bb[3]! * 2;
      const area = this.num(this.cocoGt, gt, 'area', gt.area) + EPS;
      for (let i = 0; i < dts.length; i++) {
        const d = kp(this.cocoDt, dts[i]!);
        let ne = 0;
        for (let n = 0; n < k; n++) {
          const xd = d[n * 3]!, yd = d[n * 3 + 1]!;
          let dx: number, dy: number;
          if (k1 > 0) {
            if (!(g[n * 3 + 2]! > 0)) continue;
            dx = xd - g[n * 3]!; dy = yd - g[n * 3 + 1]!;
          } else {
            dx = Math.max(0, x0 - xd) + Math.max(0, xd - x1);
            dy = Math.max(0, y0 - yd) + Math.max(0, yd - y1);
          }
          e[ne++] = Math.exp(-((dx * dx + dy * dy) / vars[n]! / area / 2));
        }
        ious[i]![j] = npSum(e.subarray(0, ne)) / ne;
      }
    }
    return ious;
  }

  /** Precision / recall over all images (`accumulate()`). */
  accumulate(): AccumulatedEval {
    const p = this.params;
    const pe = this.evaluated;
    if (!pe) throw new KestrelError('E_OPTIONS', 'run evaluate() before accumulate()');
    if (!p.useCats) p.catIds = [-1];
    const T = p.iouThrs.length, R = p.recThrs.length, K = p.useCats ? p.catIds.length : 1;
    const A = p.areaRng.length, M = p.maxDets.length;
    const precision = new Float64Array(T * R * K * A * M).fill(-1);
    const recall = new Float64Array(T * K * A * M).fill(-1);
    const recThrs = p.recThrs;
    for (let k = 0; k < K; k++) {
      const E = this.pairs[k] ?? [];
      if (E.length === 0) continue;
      for (let m = 0; m < M; m++) {
        const maxDet = p.maxDets[m]!;
        // Concatenate per-image detections (image order, each truncated), then stable sort by score.
        let total = 0;
        for (const e of E) total += Math.min(e.nd, Math.max(0, maxDet));
        const sc = new Float64Array(total), ent = new Int32Array(total), pos = new Int32Array(total);
        let n = 0;
        for (let ei = 0; ei < E.length; ei++) {
          const e = E[ei]!;
          const lim = Math.min(e.nd, Math.max(0, maxDet));
          for (let j = 0; j < lim; j++) { sc[n] = e.scores[j]!; ent[n] = ei; pos[n] = j; n++; }
        }
        const order = new Int32Array(total);
        for (let i = 0; i < total; i++) order[i] = i;
        order.sort((a, b) => (sc[b]! - sc[a]!) || (a - b));
        const nd = total;
        const tpc = new Float64Array(nd), rc = new Float64Array(nd), pr = new Float64Array(nd);
        for (let a = 0; a < A; a++) {
          let npig = 0;
          for (const e of E) npig += e.npig[a]!;
          if (npig === 0) continue;
          for (let t = 0; t < T; t++) {
            let tp = 0, fp = 0;
            for (let i = 0; i < nd; i++) {
              const o = order[i]!;
              const e = E[ent[o]!]!;
              const code = e.codes[(a * T + t) * e.nd + pos[o]!]!;
              if (code === TP) tp++;
              else if (code === FP) fp++;
              tpc[i] = tp;
              rc[i] = tp / npig;
              pr[i] = tp / (fp + tp + EPS);
            }
            recall[((t * K + k) * A + a) * M + m] = nd ? rc[nd - 1]! : 0;
            for (let i = nd - 1; i > 0; i--) if (pr[i]! > pr[i - 1]!) pr[i - 1] = pr[i]!;
            for (let r = 0; r < R; r++) {
              const pi = searchsortedLeft(rc, nd, recThrs[r]!);
              // pycocotools stops filling at the first threshold beyond the reached recall; the rest stay 0.
              if (pi >= nd) {
                for (let r2 = r; r2 < R; r2++) precision[(((t * R + r2) * K + k) * A + a) * M + m] = 0;
                break;
              }
              precision[(((t * R + r) * K + k) * A + a) * M + m] = pr[pi]!;
            }
          }
        }
      }
    }
    this.eval = { counts: [T, R, K, A, M], precision, recall };
    return this.eval;
  }

  /** The 12 (bbox/segm) or 10 (keypoints) summary numbers and lines (`summarize()`). */
  summarize(): number[] {
    const ev = this.eval;
    if (!ev) throw new KestrelError('E_OPTIONS', 'run accumulate() before summarize()');
    const p = this.params;
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
      const mean = vals.length === 0 ? -1 : (0 + pairwiseSum(vals, 0, vals.length)) / vals.length;
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
    this.stats = stats;
    this.summaryLines = lines;
    return stats;
  }

  /** Nested `[T][R][K][A][M]` precision, as pycocotools' array `.tolist()`. */
  precisionNested(): number[][][][][] {
    const ev = this.requireEval();
    const [T, R, K, A, M] = ev.counts;
    return nest(ev.precision, [T, R, K, A, M]) as number[][][][][];
  }

  /** Nested `[T][K][A][M]` recall. */
  recallNested(): number[][][][] {
    const ev = this.requireEval();
    const [T, , K, A, M] = ev.counts;
    return nest(ev.recall, [T, K, A, M]) as number[][][][];
  }

  private requireEval(): AccumulatedEval {
    if (!this.eval) throw new KestrelError('E_OPTIONS', 'run accumulate() first');
    return this.eval;
  }
}

/** First index i with `a[i] >= v` (`np.searchsorted(a, v, side='left')`). */
function searchsortedLeft(a: Float64Array, n: number, v: number): number {
  let lo = 0, hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function nest(flat: Float64Array, shape: number[]): unknown[] {
  const rec = (off: number, d: number): unknown[] => {
    const n = shape[d]!;
    if (d === shape.length - 1) return Array.from(flat.subarray(off, off + n));
    const stride = shape.slice(d + 1).reduce((x, y) => x * y, 1);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) out.push(rec(off + i * stride, d + 1));
    return out;
  };
  return rec(0, 0);
}

function checkParams(p: CocoParams): void {
  const bad = (f: string, why: string): never => { throw new KestrelError('E_OPTIONS', `params.${f}: ${why}`); };
  if (p.iouThrs.length === 0) bad('iouThrs', 'must not be empty');
  if (p.recThrs.length === 0) bad('recThrs', 'must not be empty');
  if (p.maxDets.length === 0) bad('maxDets', 'must not be empty');
  if (p.areaRng.length === 0) bad('areaRng', 'must not be empty');
  if (p.areaRngLbl.length !== p.areaRng.length) bad('areaRngLbl', 'must have one label per areaRng entry');
}
