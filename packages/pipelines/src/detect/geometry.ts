/**
 * Pure geometry shared by the detectors: letterbox placement, mapping boxes back to original pixels,
 * IoU and non-maximum suppression. Boxes here are corner form [x1, y1, x2, y2].
 */

/** Where an image of `srcWidth` x `srcHeight` lands inside a `dstWidth` x `dstHeight` model input. */
export interface LetterboxGeometry {
  srcWidth: number;
  srcHeight: number;
  dstWidth: number;
  dstHeight: number;
  /** Size of the resized image inside the input. */
  width: number;
  height: number;
  /** Offset of the resized image inside the input (left/top padding). */
  left: number;
  top: number;
}

/**
 * Fit an image into the input keeping its aspect ratio, centred, padding the rest (Ultralytics
 * `LetterBox` arithmetic: size = round(src * r), left/top = round(pad / 2 - 0.1)).
 */
export function letterboxGeometry(srcWidth: number, srcHeight: number, dstWidth: number, dstHeight: number): LetterboxGeometry {
  const r = Math.min(dstWidth / srcWidth, dstHeight / srcHeight);
  const width = Math.max(1, Math.min(dstWidth, Math.round(srcWidth * r)));
  const height = Math.max(1, Math.min(dstHeight, Math.round(srcHeight * r)));
  const left = Math.max(0, Math.round((dstWidth - width) / 2 - 0.1));
  const top = Math.max(0, Math.round((dstHeight - height) / 2 - 0.1));
  return { srcWidth, srcHeight, dstWidth, dstHeight, width, height, left, top };
}

/** Geometry of stretching the whole image onto the input (no padding, aspect not kept). */
export function stretchGeometry(srcWidth: number, srcHeight: number, dstWidth: number, dstHeight: number): LetterboxGeometry {
  return { srcWidth, srcHeight, dstWidth, dstHeight, width: dstWidth, height: dstHeight, left: 0, top: 0 };
}

/**
 * Map a corner box from model-input pixels back to original-image pixels, clipped to the image;
 * returns COCO [x, y, w, h].
 */
export function unletterboxBox(g: LetterboxGeometry, x1: number, y1: number, x2: number, y2: number): [number, number, number, number] {
  const sx = g.width / g.srcWidth;
  const sy = g.height / g.srcHeight;
  const cx = (v: number): number => Math.min(g.srcWidth, Math.max(0, (v - g.left) / sx));
  const cy = (v: number): number => Math.min(g.srcHeight, Math.max(0, (v - g.top) / sy));
  const a = cx(x1);
  const b = cy(y1);
  return [a, b, Math.max(0, cx(x2) - a), Math.max(0, cy(y2) - b)];
}

/** Intersection over union of two corner boxes. */
export function iou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const iw = Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!);
  const ih = Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const ua = (a[2]! - a[0]!) * (a[3]! - a[1]!) + (b[2]! - b[0]!) * (b[3]! - b[1]!) - inter;
  return ua > 0 ? inter / ua : 0;
}

/** A candidate box before suppression. */
export interface Candidate {
  /** Corner box [x1, y1, x2, y2] in model-input pixels. */
  box: [number, number, number, number];
  score: number;
  /** Class index of the model (0-based). */
  cls: number;
  /** Row of the model output it came from (for mask coefficients). */
  index: number;
}

/**
 * Greedy non-maximum suppression. With `perClass` (the default) boxes only suppress boxes of their own
 * class. Returns at most `maxDetections` candidates, best score first.
 */
export function nms(cands: Candidate[], iouThreshold: number, maxDetections: number, perClass = true): Candidate[] {
  const sorted = [...cands].sort((a, b) => b.score - a.score);
  const kept: Candidate[] = [];
  const byClass = new Map<number, Candidate[]>();
  for (const c of sorted) {
    if (kept.length >= maxDetections) break;
    const key = perClass ? c.cls : 0;
    const same = byClass.get(key) ?? [];
    if (same.some((k) => iou(k.box, c.box) > iouThreshold)) continue;
    same.push(c);
    byClass.set(key, same);
    kept.push(c);
  }
  return kept;
}
