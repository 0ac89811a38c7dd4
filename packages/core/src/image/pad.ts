import { KestrelError } from '../errors.js';
import { resizeBicubicPillow } from './resize.js';
import type { PixelImage } from './types.js';
import { assertDim, assertPixelImage } from './types.js';

/** Python 3 `round(x)` for a float: round half to even (exact on the double value). */
export function pythonRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Size an image takes inside a `width` x `height` box keeping its aspect ratio (Pillow 9.4 `ImageOps.contain`). */
export function containSize(srcWidth: number, srcHeight: number, width: number, height: number): { width: number; height: number } {
  const imRatio = srcWidth / srcHeight;
  const destRatio = width / height;
  let w = width;
  let h = height;
  if (imRatio !== destRatio) {
    if (imRatio > destRatio) h = pythonRound((srcHeight / srcWidth) * width);
    else w = pythonRound((srcWidth / srcHeight) * height);
  }
  return { width: w, height: h };
}

/** Normalise a fill colour to one value per channel (a single number fills every channel). */
function fillFor(fill: number | readonly number[], channels: number): number[] {
  const f = typeof fill === 'number' ? new Array<number>(channels).fill(fill) : [...fill];
  if (f.length !== channels || f.some((v) => !Number.isInteger(v) || v < 0 || v > 255)) {
    throw new KestrelError('E_OPTIONS', `fill colour must be ${channels} integer(s) in 0..255, got ${JSON.stringify(fill)}`);
  }
  return f;
}

/** A `width` x `height` image filled with one colour. */
export function solidImage<C extends 1 | 3>(width: number, height: number, channels: C, fill: number | readonly number[] = 0): PixelImage & { channels: C } {
  assertDim(width, 'width');
  assertDim(height, 'height');
  const f = fillFor(fill, channels);
  const data = new Uint8Array(width * height * channels);
  if (channels === 1 || f.every((v) => v === f[0])) data.fill(f[0]!);
  else for (let i = 0; i < data.length; i += channels) for (let c = 0; c < channels; c++) data[i + c] = f[c]!;
  return { data, width, height, channels };
}

/** Copy `src` into `dst` with its top-left corner at (x, y); the parts outside `dst` are dropped. */
export function pasteImage(dst: PixelImage, src: PixelImage, x: number, y: number): void {
  if (src.channels !== dst.channels) throw new KestrelError('E_OPTIONS', `cannot paste a ${src.channels}-channel image into a ${dst.channels}-channel one`);
  const ch = dst.channels;
  const x0 = Math.max(0, x), y0 = Math.max(0, y);
  const x1 = Math.min(dst.width, x + src.width), y1 = Math.min(dst.height, y + src.height);
  if (x1 <= x0 || y1 <= y0) return;
  const len = (x1 - x0) * ch;
  for (let yy = y0; yy < y1; yy++) {
    const s = ((yy - y) * src.width + (x0 - x)) * ch;
    dst.data.set(src.data.subarray(s, s + len), (yy * dst.width + x0) * ch);
  }
}

/**
 * Letterbox like Pillow 9.4 `ImageOps.pad(img, (width, height), method=BICUBIC, color=fill)`: scale the
 * image to fit inside the box keeping its aspect ratio (sizes rounded with Python's half-to-even
 * `round`, resized with {@link resizeBicubicPillow}), then paste it centred (offset again rounded
 * half-to-even) on a canvas of the fill colour. Bit-identical to Pillow.
 *
 * @param fill one value per channel (or one number for all); Pillow's default is black (0).
 */
export function padToSize<T extends PixelImage>(img: T, width: number, height: number, fill: number | readonly number[] = 0): T {
  assertPixelImage(img);
  assertDim(width, 'pad width');
  assertDim(height, 'pad height');
  const f = fillFor(fill, img.channels);
  const size = containSize(img.width, img.height, width, height);
  const resized = resizeBicubicPillow(img, size.width, size.height);
  if (size.width === width && size.height === height) return resized;
  const out = solidImage(width, height, img.channels, f);
  if (size.width !== width) pasteImage(out, resized, pythonRound((width - size.width) * 0.5), 0);
  else pasteImage(out, resized, 0, pythonRound((height - size.height) * 0.5));
  return { ...img, data: out.data, width, height };
}
