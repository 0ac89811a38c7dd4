/** Compact per-category evalImgs storage shared by `COCOeval.evaluate` and `accumulate`. */
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
