import { containSize, pythonRound } from '@kestrel/core';
import type { DeepseekBox } from './grounding-parse.js';

/**
 * DeepSeek-VL2's coordinate convention: box corners as integers 0–999, a fraction of the frame (999
 * is the far edge).
 * - `image` (default): the frame is the original image, as DeepSeek's own demo maps boxes back
 *   (`deepseek_vl2/serve/app_modules/utils.py` `parse_ref_bbox`: `x / 999 * width`).
 * - `padded`: the frame is the square letterboxed global view the model saw (`ImageOps.pad` to the
 *   tile size S on mean-gray): corners are mapped back through the padding offset and the resize, with
 *   Pillow's exact rounding of the resized size and the offset.
 */
export type GroundingFrame = 'image' | 'padded';

/** Pixel size of the original image, and the tile size for the `padded` frame. */
export interface FrameGeometry {
  width: number;
  height: number;
  /** global-view side S (the processor's tile size); needed for the `padded` frame */
  tile?: number;
}

/** Where the image lies in the S×S letterbox: offset and size in canvas pixels (Pillow `ImageOps.pad`). */
function letterbox(g: FrameGeometry): { S: number; x0: number; y0: number; w: number; h: number } {
  const S = g.tile ?? Math.max(g.width, g.height);
  const { width: w, height: h } = containSize(g.width, g.height, S, S);
  return { S, w, h, x0: w === S ? 0 : pythonRound((S - w) * 0.5), y0: w === S && h !== S ? pythonRound((S - h) * 0.5) : 0 };
}

const clamp = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);

/**
 * A DeepSeek box -> COCO `[x, y, width, height]` in original-image pixels (clipped to the image; an
 * empty result has width or height 0).
 */
export function boxFromDeepseek(b: DeepseekBox, g: FrameGeometry, frame: GroundingFrame = 'image'): [number, number, number, number] {
  let [x1, y1, x2, y2]: number[] = [];
  if (frame === 'image') {
    [x1, y1, x2, y2] = [b[0] / 999 * g.width, b[1] / 999 * g.height, b[2] / 999 * g.width, b[3] / 999 * g.height];
  } else {
    const L = letterbox(g);
    const px = (c: number, o: number, n: number, full: number): number => (c / 999 * L.S - o) * full / n;
    [x1, y1, x2, y2] = [px(b[0], L.x0, L.w, g.width), px(b[1], L.y0, L.h, g.height), px(b[2], L.x0, L.w, g.width), px(b[3], L.y0, L.h, g.height)];
  }
  const a = [clamp(x1!, g.width), clamp(y1!, g.height), clamp(x2!, g.width), clamp(y2!, g.height)] as const;
  return [a[0], a[1], Math.max(0, a[2] - a[0]), Math.max(0, a[3] - a[1])];
}

/** COCO `[x, y, width, height]` pixels -> the DeepSeek box (rounded to integers, clipped to 0–999); the inverse of {@link boxFromDeepseek}. */
export function boxToDeepseek(bbox: readonly [number, number, number, number], g: FrameGeometry, frame: GroundingFrame = 'image'): DeepseekBox {
  const [x, y, w, h] = bbox;
  const q = (v: number): number => Math.min(999, Math.max(0, Math.round(v)));
  if (frame === 'image') return [q(x / g.width * 999), q(y / g.height * 999), q((x + w) / g.width * 999), q((y + h) / g.height * 999)];
  const L = letterbox(g);
  const c = (p: number, o: number, n: number, full: number): number => q((p * n / full + o) / L.S * 999);
  return [c(x, L.x0, L.w, g.width), c(y, L.y0, L.h, g.height), c(x + w, L.x0, L.w, g.width), c(y + h, L.y0, L.h, g.height)];
}
