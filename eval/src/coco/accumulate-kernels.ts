/**
 * The per-category store of COCOeval's evaluate() results and the kernels accumulate() runs over it
 * (stable sort by score, top-k selection, cumulative TP/FP, recall-threshold interpolation), with
 * pycocotools' semantics down to tie order.
 */
/** `np.spacing(1)`. */
export const EPS = 2.220446049250313e-16;

/** Per-detection outcome at one IoU threshold and area range. */
export const IGNORED = 0, TP = 1, FP = 2;

/**
 * pycocotools' evalImgs for one category, compacted: one entry per image that has GT or detections
 * (in image order); per detection (sorted by score, at most maxDets[-1]) one code per
 * (area range, IoU threshold), stored detection-major in one growing arena.
 */
export class CatStore {
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
export function sortCategory(S: CatStore, AT: number, idxBuf: Int32Array, tmpBuf: Int32Array, rank: Int32Array, rankSorted: Int32Array, codes: Uint8Array): number {
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
export function selectTop(rankSorted: Int32Array, total: number, lim: number, maxNd: number, sel: Int32Array): number {
  let nd = 0;
  if (lim >= maxNd) for (let i = 0; i < total; i++) sel[nd++] = i;
  else for (let i = 0; i < total; i++) if (rankSorted[i]! < lim) sel[nd++] = i;
  return nd;
}

/**
 * Cumulative TP / FP over the score-sorted detections `sel` for one area range, all IoU thresholds:
 * `rc[t*nd+q] = tp/npig`, `pr[t*nd+q] = tp/(fp+tp+eps)` (a small function so V8 optimises it early).
 */
export function cumulate(codes: Uint8Array, sel: Int32Array, nd: number, AT: number, col0: number, T: number, npig: number,
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
export function interpolate(pr: Float64Array, o: number, nd: number, rc: Float64Array, recThrs: readonly number[],
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
