import { mask as cocoMask } from '@kestrel/eval';
import type { LetterboxGeometry } from './geometry.js';

/** COCO compressed RLE: `size` is [height, width], `counts` the ASCII run-length string. */
export interface CocoRle {
  size: [number, number];
  counts: string;
}

/**
 * Map a row-major 0/1 mask in model-input pixels back onto the original image (undo the letterbox:
 * crop the image's slot, scale with nearest-neighbour sampling at pixel centres).
 */
export function unletterboxMask(mask: Uint8Array, g: LetterboxGeometry): Uint8Array {
  const out = new Uint8Array(g.srcWidth * g.srcHeight);
  const sx = g.width / g.srcWidth;
  const sy = g.height / g.srcHeight;
  const xs = new Int32Array(g.srcWidth);
  for (let x = 0; x < g.srcWidth; x++) xs[x] = Math.min(g.dstWidth - 1, g.left + Math.floor((x + 0.5) * sx));
  for (let y = 0; y < g.srcHeight; y++) {
    const row = Math.min(g.dstHeight - 1, g.top + Math.floor((y + 0.5) * sy)) * g.dstWidth;
    const o = y * g.srcWidth;
    for (let x = 0; x < g.srcWidth; x++) out[o + x] = mask[row + xs[x]!]! ? 1 : 0;
  }
  return out;
}

/** An input-pixel mask (or none: empty) -> image-sized COCO RLE (pycocotools `mask.encode` from @kestrel/eval). */
export function maskToRle(mask: Uint8Array | undefined, g: LetterboxGeometry): CocoRle {
  const data = mask ? unletterboxMask(mask, g) : new Uint8Array(g.srcWidth * g.srcHeight);
  return cocoMask.encode({ height: g.srcHeight, width: g.srcWidth, data });
}
