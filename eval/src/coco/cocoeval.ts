/**
 * `COCOeval`: pycocotools' `evaluate` / `accumulate` / `summarize` with the same semantics, down to
 * tie order (stable sorts), crowd handling and -1 for categories without GT. Per-image results are
 * kept as compact typed arrays (one code per IoU threshold and detection), and IoUs are computed per
 * image and category only, so memory stays proportional to the number of detections.
 */
import { KestrelError } from '@kestrel/core';
import { rleIou } from '../mask/rle.js';
import type { COCO, CocoAnnotation } from './coco.js';
import { formatError } from './schema.js';
import { type CocoParams, type IouType, defaultParams, npUnique } from './params.js';
import { formatFixed, npSum, pairwiseSum } from './numeric.js';

/** `np.spacing(1)`. */
const EPS = 2.220446049250313e-16;

/** Per-detection outcome at one IoU threshold and area range. */
const IGNORED = 0, TP = 1, FP = 2;

/**
 * pycocotools' evalImgs for one category, compacted: one entry per image that has GT or detections
 * (in image order); per detection (sorted by score, at most maxDets[-1]) one code per
 * (area range, IoU threshold), stored detection-major in one growing arena.
 */
class CatStore {
  /** Per entry: image index, first detection, detection count. */
  img: number[] = [];
  off: number[] = [];
  nd: number[] = [];
  /** Per entry and area range: non-ignored GT count (`npig[e*A + a]`). */
  npig: number[] = [];
  scores = new Float64Array(64);
  /** `codes[det*AT + a*T + t]`. */
  codes: Uint8Array;
  n = 0;
  constructor(readonly AT: number) {
    this.codes = new Uint8Array(64 * AT);
  }
  /** Reserve room for `d` more detections; returns the first index. */
  reserve(d: number): number {
    const need = this.n + d;
    if (need > this.scores.length) {
      let cap = this.scores.length;
      while (cap < need) cap *= 2;
      const s = new Float64Array(cap); s.set(this.scores.subarray(0, this.n)); this.scores = s;
      const c = new Uint8Array(cap * this.AT); c.set(this.codes.subarray(0, this.n * this.AT)); this.codes = c;
    }
    const at = this.n;
    this.n = need;
    return at;
  }
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

/**
 * Per-image annotation lists as pycocotools builds them with `loadAnns(getAnnIds(imgIds, catIds))`.
 * Without duplicate annotation ids that is the image's own list; with duplicates, ids resolve to the
 * last annotation with that id (a Python dict), which may belong to another image.
 */
function imageLists(c: COCO, imgIds: number[], catIds: number[]): (img: number) => CocoAnnotation[] {
  const none: CocoAnnotation[] = [];
  if (c.anns.size === c.annotations.length) return (img) => c.imgToAnns.get(img) ?? none;
  const byImg = new Map<number, CocoAnnotation[]>();
  for (const a of c.annotationsFor(imgIds, catIds)) {
    let l = byImg.get(a.image_id);
    if (!l) byImg.set(a.image_id, (l = []));
    l.push(a);
  }
  return (img) => byImg.get(img) ?? none;
}

/** Detections by descending score, ties in input order (`np.argsort(-scores, kind='mergesort')`), first `maxDet`. */
function sortByScore(dt: CocoAnnotation[], maxDet: number): CocoAnnotation[] {
  const lim = Math.max(0, maxDet);
  if (dt.length <= 1) return dt.length <= lim ? dt : [];
  let sorted = true;
  for (let i = 1; i < dt.length; i++) if (dt[i]!.score! > dt[i - 1]!.score!) { sorted = false; break; }
  let out: CocoAnnotation[];
  if (sorted) out = dt;
  else {
    const idx = dt.map((_, i) => i);
    idx.sort((a, b) => (dt[b]!.score! - dt[a]!.score!) || (a - b));
    out = idx.map((i) => dt[i]!);
  }
  return out.length > lim ? out.slice(0, lim) : out;
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
  private stores: CatStore[] = [];
  private thr = new Float64Array(0);
  private areaLo = new Float64Array(0);
  private areaHi = new Float64Array(0);
  private iouBuf = new Float64Array(256);
  private crowdBuf = new Uint8Array(64);
  private scratch = { iscrowd: new Uint8Array(16), baseIgnore: new Uint8Array(16), gtArea: new Float64Array(16), dtArea: new Float64Array(16), gtind: new Int32Array(16), gtIg: new Uint8Array(16), gtm: new Uint8Array(160), gIdNonzero: new Uint8Array(16) };

  /** Reusable per-pair buffers (allocating small typed arrays per image-category is what costs). */
  private scratchFor(G: number, D: number, T: number): COCOeval['scratch'] {
    const s = this.scratch;
    if (s.iscrowd.length < G) {
      const n = Math.max(G, s.iscrowd.length * 2);
      s.iscrowd = new Uint8Array(n); s.baseIgnore = new Uint8Array(n); s.gtArea = new Float64Array(n);
      s.gtind = new Int32Array(n); s.gtIg = new Uint8Array(n); s.gIdNonzero = new Uint8Array(n);
    }
    if (s.gtm.length < T * G) s.gtm = new Uint8Array(Math.max(T * G, s.gtm.length * 2));
    if (s.dtArea.length < D) s.dtArea = new Float64Array(Math.max(D, s.dtArea.length * 2));
    return s;
  }
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
    const gtOf = imageLists(this.cocoGt, p.imgIds, useCats ? p.catIds : []);
    const dtOf = imageLists(this.cocoDt, p.imgIds, useCats ? p.catIds : []);
    this.thr = Float64Array.from(p.iouThrs, (t) => Math.min(t, 1 - 1e-10));
    this.areaLo = Float64Array.from(p.areaRng, (r) => r[0]);
    this.areaHi = Float64Array.from(p.areaRng, (r) => r[1]);

    const AT = p.areaRng.length * p.iouThrs.length;
    const stores: CatStore[] = Array.from({ length: K }, () => new CatStore(AT));
    const catIndex = new Map<number, number>();
    p.catIds.forEach((id, k) => { if (!catIndex.has(id)) catIndex.set(id, k); });
    // Per-image buckets by category index, reused across images (pycocotools' _gts/_dts defaultdicts).
    const gB: CocoAnnotation[][] = Array.from({ length: K }, () => []);
    const dB: CocoAnnotation[][] = Array.from({ length: K }, () => []);
    const touched: number[] = [];
    for (let i = 0; i < I; i++) {
      const gl = gtOf(p.imgIds[i]!), dl = dtOf(p.imgIds[i]!);
      if (gl.length === 0 && dl.length === 0) continue;
      if (useCats) {
        touched.length = 0;
        for (const g of gl) {
          const k = catIndex.get(g.category_id);
          if (k === undefined) continue;
          if (gB[k]!.length === 0 && dB[k]!.length === 0) touched.push(k);
          gB[k]!.push(g);
        }
        for (const d of dl) {
          const k = catIndex.get(d.category_id);
          if (k === undefined) continue;
          if (gB[k]!.length === 0 && dB[k]!.length === 0) touched.push(k);
          dB[k]!.push(d);
        }
        for (const k of touched) {
          this.evaluatePair(stores[k]!, i, gB[k]!, dB[k]!, gB[k]!, dB[k]!);
          gB[k]!.length = 0; dB[k]!.length = 0;
        }
      } else {
        // Labels ignored: concatenate in params.catIds order (duplicates included, as pycocotools does).
        const byCat = new Map<number, { g: CocoAnnotation[]; d: CocoAnnotation[] }>();
        const get = (c: number): { g: CocoAnnotation[]; d: CocoAnnotation[] } => {
          let b = byCat.get(c);
          if (!b) byCat.set(c, (b = { g: [], d: [] }));
          return b;
        };
        for (const g of gl) get(g.category_id).g.push(g);
        for (const d of dl) get(d.category_id).d.push(d);
        const g: CocoAnnotation[] = [], d: CocoAnnotation[] = [];
        for (const c of p.catIds) { const b = byCat.get(c); if (b) { g.push(...b.g); d.push(...b.d); } }
        // computeOks looks up category -1 only, so keypoints without categories never match.
        const kb = byCat.get(-1);
        if (p.iouType === 'keypoints') this.evaluatePair(stores[0]!, i, g, d, kb?.g ?? [], kb?.d ?? []);
        else this.evaluatePair(stores[0]!, i, g, d, g, d);
      }
    }
    this.stores = stores;
    this.evaluated = structuredClone(p);
    this.eval = null;
  }

  /** Evaluate one image for one category (or all, useCats=0) over every area range (`evaluateImg`). */
  private evaluatePair(store: CatStore, img: number, gt: CocoAnnotation[], dt: CocoAnnotation[], iouGt: CocoAnnotation[], iouDt: CocoAnnotation[]): void {
    if (gt.length === 0 && dt.length === 0) return;
    const p = this.params;
    const T = p.iouThrs.length, A = p.areaRng.length, AT = A * T;
    const maxDet = p.maxDets[p.maxDets.length - 1]!;
    const dts = sortByScore(dt, maxDet);
    const D = dts.length, G = gt.length;
    const ious = this.computeIou(gt, dts, iouGt, iouDt, maxDet);
    const hasIou = ious !== null && D > 0 && G > 0;
    const sc = this.scratchFor(G, D, T);
    const { iscrowd, baseIgnore, gtArea, dtArea, gtind, gtIg, gtm, gIdNonzero } = sc;
    for (let j = 0; j < G; j++) {
      const g = gt[j]!;
      iscrowd[j] = g.iscrowd ? 1 : 0;
      baseIgnore[j] = this.gtIgnore(g);
      gtArea[j] = this.num(this.cocoGt, g, 'area', g.area);
    }
    for (let d = 0; d < D; d++) dtArea[d] = this.num(this.cocoDt, dts[d]!, 'area', dts[d]!.area);
    const at = store.reserve(D);
    const codes = store.codes;
    store.img.push(img); store.off.push(at); store.nd.push(D);
    for (let d = 0; d < D; d++) store.scores[at + d] = dts[d]!.score!;
    const thr = this.thr;
    for (let a = 0; a < A; a++) {
      const lo = this.areaLo[a]!, hi = this.areaHi[a]!;
      // Non-ignored GT first, stable (np.argsort(_ignore, kind='mergesort')).
      let n = 0, np = 0;
      for (let j = 0; j < G; j++) if (!(baseIgnore[j] || gtArea[j]! < lo || gtArea[j]! > hi)) gtind[n++] = j;
      np = n;
      for (let j = 0; j < G; j++) if (baseIgnore[j] || gtArea[j]! < lo || gtArea[j]! > hi) gtind[n++] = j;
      for (let j = 0; j < G; j++) { gtIg[j] = j < np ? 0 : 1; gIdNonzero[j] = gt[gtind[j]!]!.id !== 0 ? 1 : 0; }
      store.npig.push(np);
      gtm.fill(0, 0, T * G);
      for (let t = 0; t < T; t++) {
        for (let d = 0; d < D; d++) {
          let m = -1;
          if (hasIou) {
            let best = thr[t]!;
            const row = d * G;
            for (let j = 0; j < G; j++) {
              const gj = gtind[j]!;
              if (gtm[t * G + j] && !iscrowd[gj]) continue;
              if (m > -1 && gtIg[m] === 0 && gtIg[j] === 1) break;
              const v = ious[row + gj]!;
              if (v < best) continue;
              best = v;
              m = j;
            }
          }
          let ignored = 0, matched = 0;
          if (m > -1) {
            ignored = gtIg[m]!;
            // pycocotools stores the GT id as the match; an id of 0 reads as "unmatched" later.
            matched = gIdNonzero[m]!;
            gtm[t * G + m] = 1;
          }
          if (!matched && (dtArea[d]! < lo || dtArea[d]! > hi)) ignored = 1;
          codes[(at + d) * AT + a * T + t] = ignored ? IGNORED : matched ? TP : FP;
        }
      }
    }
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

  /** `computeIoU` / `computeOks`: flat `[D*G]` IoUs with GT in original order, or null when empty. */
  private computeIou(gt: CocoAnnotation[], dts: CocoAnnotation[], iouGt: CocoAnnotation[], iouDt: CocoAnnotation[], maxDet: number): Float64Array | null {
    const p = this.params;
    if (p.iouType === 'keypoints') {
      const kd = sortByScore(iouDt, maxDet);
      const o = this.computeOks(iouGt, kd);
      // Shapes only disagree for keypoints with useCats=0 (pycocotools fails there); never match then.
      return o && kd.length === dts.length && iouGt.length === gt.length ? o : null;
    }
    if (dts.length === 0 || gt.length === 0) return null;
    const crowd = this.crowdBuf.length >= gt.length ? this.crowdBuf : (this.crowdBuf = new Uint8Array(gt.length * 2));
    for (let j = 0; j < gt.length; j++) crowd[j] = gt[j]!.iscrowd ? 1 : 0;
    if (p.iouType === 'segm') {
      const o = rleIou(dts.map((d) => this.cocoDt.annToRLE(d)), gt.map((g) => this.cocoGt.annToRLE(g)), crowd);
      const flat = new Float64Array(dts.length * gt.length);
      for (let d = 0; d < dts.length; d++) flat.set(o[d]!, d * gt.length);
      return flat;
    }
    // bbIou (maskApi.c) inline, into a reused buffer: same operations in the same order.
    const G = gt.length, D = dts.length;
    if (this.iouBuf.length < D * G) this.iouBuf = new Float64Array(Math.max(D * G, this.iouBuf.length * 2));
    const o = this.iouBuf;
    for (let d = 0; d < D; d++) {
      const Db = this.box(this.cocoDt, dts[d]!);
      const dx = Db[0]!, dy = Db[1]!, dw = Db[2]!, dh = Db[3]!, da = dw * dh;
      for (let g = 0; g < G; g++) {
        const Gb = this.box(this.cocoGt, gt[g]!);
        const gx = Gb[0]!, gy = Gb[1]!, gw = Gb[2]!, gh = Gb[3]!;
        let v = 0;
        const w = Math.min(dw + dx, gw + gx) - Math.max(dx, gx);
        if (w > 0) {
          const h = Math.min(dh + dy, gh + gy) - Math.max(dy, gy);
          if (h > 0) {
            const i = w * h;
            v = i / (crowd[g] ? da : da + gw * gh - i);
          }
        }
        o[d * G + g] = v;
      }
    }
    return o;
  }

  private computeOks(gts: CocoAnnotation[], dts: CocoAnnotation[]): Float64Array | null {
    if (gts.length === 0 || dts.length === 0) return null;
    const sigmas = this.params.kpt_oks_sigmas;
    if (!sigmas || sigmas.length === 0) throw new KestrelError('E_OPTIONS', 'kpt_oks_sigmas must be set for keypoints evaluation');
    const k = sigmas.length;
    const vars = sigmas.map((s) => (s * 2) * (s * 2));
    const kp = (c: COCO, a: CocoAnnotation): number[] => {
      const v = a.keypoints;
      if (!v || v.length !== 3 * k) formatError(c.source, c.annPath(a, 'keypoints'), `missing or not ${k} (x, y, v) triples (one per kpt_oks_sigmas entry)`);
      return v;
    };
    const G = gts.length;
    const ious = new Float64Array(dts.length * G);
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
        ious[i * G + j] = npSum(e.subarray(0, ne)) / ne;
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
    const AT = A * T;
    const tpT = new Float64Array(T), fpT = new Float64Array(T);
    // Work buffers sized for the largest category, reused (allocating them per category costs more than the work).
    let maxTotal = 0;
    for (const S of this.stores) if (S && S.n > maxTotal) maxTotal = S.n;
    const idxBuf = new Int32Array(maxTotal), tmpBuf = new Int32Array(maxTotal);
    const rankBuf = new Int32Array(maxTotal), rankSorted = new Int32Array(maxTotal);
    const selBuf = new Int32Array(maxTotal), codes = new Uint8Array(maxTotal * AT);
    const rc = new Float64Array(T * maxTotal), pr = new Float64Array(T * maxTotal);
    for (let k = 0; k < K; k++) {
      const S = this.stores[k];
      if (!S || S.img.length === 0) continue;
      const total = S.n;
      const maxNd = sortCategory(S, AT, idxBuf, tmpBuf, rankBuf, rankSorted, codes);
      const npigA = new Int32Array(A);
      for (let e = 0; e < S.img.length; e++) for (let a = 0; a < A; a++) npigA[a] += S.npig[e * A + a]!;
      for (let m = 0; m < M; m++) {
        const lim = Math.max(0, p.maxDets[m]!);
        const sel = selBuf;
        const nd = selectTop(rankSorted, total, lim, maxNd, sel);
        for (let a = 0; a < A; a++) {
          const npig = npigA[a]!;
          if (npig === 0) continue;
          cumulate(codes, sel, nd, AT, a * T, T, npig, tpT, fpT, rc, pr);
          for (let t = 0; t < T; t++) {
            recall[((t * K + k) * A + a) * M + m] = nd ? rc[t * nd + nd - 1]! : 0;
            interpolate(pr, t * nd, nd, rc, recThrs, precision, ((t * R * K + k) * A + a) * M + m, K * A * M);
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

/**
 * Stable sort of the indices in `idx` by descending `key` (ties keep their order), i.e.
 * `np.argsort(-key, kind='mergesort')`: a bottom-up merge sort without comparator calls.
 */
export function argsortDescStable(key: Float64Array, idx: Int32Array, tmp: Int32Array): void {
  const n = idx.length;
  let src = idx, dst = tmp.subarray(0, n);
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n), hi = Math.min(lo + 2 * width, n);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) {
        // Take from the right run only when strictly greater: equal keys keep left-first order.
        if (key[src[j]!]! > key[src[i]!]!) dst[o++] = src[j++]!;
        else dst[o++] = src[i++]!;
      }
      while (i < mid) dst[o++] = src[i++]!;
      while (j < hi) dst[o++] = src[j++]!;
    }
    const t = src; src = dst; dst = t;
  }
  if (src !== idx) idx.set(src);
}

/**
 * One stable sort by score of every kept detection of a category (arena indices ascend in image
 * order, so ties break by image, then by per-image rank). Truncating each image to a smaller maxDet
 * keeps a subsequence of this order, which is exactly the stable sort of that subset. Writes the
 * codes in sorted order (so later loops read memory sequentially) and each detection's per-image
 * rank; returns the largest per-image count.
 */
function sortCategory(S: CatStore, AT: number, idxBuf: Int32Array, tmpBuf: Int32Array, rank: Int32Array, rankSorted: Int32Array, codes: Uint8Array): number {
  const total = S.n, nE = S.img.length;
  const idx = idxBuf.subarray(0, total);
  for (let i = 0; i < total; i++) idx[i] = i;
  argsortDescStable(S.scores, idx, tmpBuf);
  let maxNd = 0;
  for (let e = 0; e < nE; e++) {
    const off = S.off[e]!, c = S.nd[e]!;
    if (c > maxNd) maxNd = c;
    for (let j = 0; j < c; j++) rank[off + j] = j;
  }
  const src = S.codes;
  for (let i = 0; i < total; i++) {
    const from = idx[i]! * AT, to = i * AT;
    for (let c = 0; c < AT; c++) codes[to + c] = src[from + c]!;
    rankSorted[i] = rank[idx[i]!]!;
  }
  return maxNd;
}

/** Sorted positions of the detections within the first `lim` of their image (pycocotools' `[0:maxDet]`). */
function selectTop(rankSorted: Int32Array, total: number, lim: number, maxNd: number, sel: Int32Array): number {
  let nd = 0;
  if (lim >= maxNd) for (let i = 0; i < total; i++) sel[nd++] = i;
  else for (let i = 0; i < total; i++) if (rankSorted[i]! < lim) sel[nd++] = i;
  return nd;
}

/**
 * Cumulative TP / FP over the score-sorted detections `sel` for one area range, all IoU thresholds:
 * `rc[t*nd+q] = tp/npig`, `pr[t*nd+q] = tp/(fp+tp+eps)` (a small function so V8 optimises it early).
 */
function cumulate(codes: Uint8Array, sel: Int32Array, nd: number, AT: number, col0: number, T: number, npig: number,
  tpT: Float64Array, fpT: Float64Array, rc: Float64Array, pr: Float64Array): void {
  tpT.fill(0); fpT.fill(0);
  for (let q = 0; q < nd; q++) {
    const base = sel[q]! * AT + col0;
    for (let t = 0; t < T; t++) {
      const code = codes[base + t]!;
      if (code === TP) tpT[t]++;
      else if (code === FP) fpT[t]++;
      const tp = tpT[t]!;
      rc[t * nd + q] = tp / npig;
      pr[t * nd + q] = tp / (fpT[t]! + tp + EPS);
    }
  }
}

/**
 * Make precision monotone from the right, then read it at each recall threshold (searchsorted left)
 * into `precision[out + r*stride]`; pycocotools stops at the first threshold beyond the reached
 * recall and leaves the rest at 0.
 */
function interpolate(pr: Float64Array, o: number, nd: number, rc: Float64Array, recThrs: readonly number[],
  precision: Float64Array, out: number, stride: number): void {
  for (let i = nd - 1; i > 0; i--) if (pr[o + i]! > pr[o + i - 1]!) pr[o + i - 1] = pr[o + i]!;
  const R = recThrs.length;
  for (let r = 0; r < R; r++) {
    const pi = searchsortedLeft(rc, o, nd, recThrs[r]!);
    if (pi >= nd) {
      for (let r2 = r; r2 < R; r2++) precision[out + r2 * stride] = 0;
      return;
    }
    precision[out + r * stride] = pr[o + pi]!;
  }
}

/** First index i with `a[off+i] >= v` over n entries (`np.searchsorted(a, v, side='left')`). */
function searchsortedLeft(a: Float64Array, off: number, n: number, v: number): number {
  let lo = 0, hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[off + mid]! < v) lo = mid + 1;
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
