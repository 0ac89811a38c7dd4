import type { PixelImage } from './types.js';
import { assertDim, assertPixelImage } from './types.js';

/** Pillow's fixed-point precision for 8-bit resampling (Resample.c: 32 - 8 - 2). */
const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Pillow's bicubic kernel with a = -0.5, evaluated in double precision exactly as Resample.c does. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/**
 * Integer resampling coefficients for one axis: output `i` reads `count[i]` input samples starting at
 * `start[i]`, weighted by `weights[i * ksize + k]` (22-bit fixed point).
 */
export interface ResampleCoefficients {
  inSize: number;
  outSize: number;
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

// Coefficients depend only on (inSize, outSize); a processor resizes many images to the same few sizes.
const cache = new Map<string, ResampleCoefficients>();
const CACHE_MAX = 64;

/**
 * Pillow `precompute_coeffs` (box = [0, inSize], bicubic) followed by `normalize_coeffs_8bpc`: the
 * double-precision weights normalised to sum 1 and converted to 22-bit integers, rounding half away
 * from zero then truncating, as the C code does.
 */
export function bicubicCoefficients(inSize: number, outSize: number): ResampleCoefficients {
  const key = `${inSize}:${outSize}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const scale = inSize / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = 2.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C casts double -> int by truncation toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? w[x]! / ww : w[x]!;
      weights[base + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  const c: ResampleCoefficients = { inSize, outSize, ksize, start, count, weights };
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(key, c);
  return c;
}

/** Pillow clip8 on a fixed-point accumulator. */
function clip8(acc: number): number {
  if (acc >= ONE * 256) return 255;
  if (acc <= 0) return 0;
  return acc >> PRECISION_BITS;
}

// Accumulators are int32 with wrap-around, exactly like Pillow's C `int` accumulators (and fast in V8).

/** Horizontal pass: every row, `src` width `inW` -> `dst` width `co.outSize`. */
function resampleHorizontal(src: Uint8Array, dst: Uint8Array, rows: number, inW: number, ch: number, co: ResampleCoefficients): void {
  const { outSize, ksize, start, count, weights } = co;
  for (let y = 0; y < rows; y++) {
    const rowIn = y * inW * ch;
    const rowOut = y * outSize * ch;
    for (let xx = 0; xx < outSize; xx++) {
      const n = count[xx]!;
      const kb = xx * ksize;
      let p = rowIn + start[xx]! * ch;
      const o = rowOut + xx * ch;
      if (ch === 3) {
        let a0 = HALF, a1 = HALF, a2 = HALF;
        for (let k = 0; k < n; k++, p += 3) {
          const wk = weights[kb + k]!;
          a0 = (a0 + Math.imul(src[p]!, wk)) | 0;
          a1 = (a1 + Math.imul(src[p + 1]!, wk)) | 0;
          a2 = (a2 + Math.imul(src[p + 2]!, wk)) | 0;
        }
        dst[o] = clip8(a0);
        dst[o + 1] = clip8(a1);
        dst[o + 2] = clip8(a2);
      } else {
        for (let c = 0; c < ch; c++) {
          let a = HALF;
          for (let k = 0, q = p + c; k < n; k++, q += ch) a = (a + Math.imul(src[q]!, weights[kb + k]!)) | 0;
          dst[o + c] = clip8(a);
        }
      }
    }
  }
}

/** Vertical pass: `src` height `co.inSize` -> `dst` height `co.outSize`, rows of `rowLen` samples. */
function resampleVertical(src: Uint8Array, dst: Uint8Array, rowLen: number, co: ResampleCoefficients): void {
  const { outSize, ksize, start, count, weights } = co;
  // Accumulate whole output rows at once so every inner loop walks memory contiguously.
  const acc = new Int32Array(rowLen);
  for (let yy = 0; yy < outSize; yy++) {
    const n = count[yy]!;
    const kb = yy * ksize;
    const y0 = start[yy]!;
    acc.fill(HALF);
    for (let k = 0; k < n; k++) {
      const wk = weights[kb + k]!;
      const r = (y0 + k) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] = (acc[i]! + Math.imul(src[r + i]!, wk)) | 0;
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) dst[o + i] = clip8(acc[i]!);
  }
}

/**
 * Resize an 8-bit image exactly like Pillow's `Image.resize(size, Image.BICUBIC)` (Pillow 9.x, no
 * `box`, no `reducing_gap`): horizontal pass first (only when the width changes), then vertical (only
 * when the height changes), 22-bit fixed-point weights, 8-bit rounding after each pass. Output bytes
 * are bit-identical to Pillow's. Returns a new image (a copy when the size is unchanged).
 */
export function resizeBicubicPillow<T extends PixelImage>(img: T, width: number, height: number): T {
  assertPixelImage(img);
  assertDim(width, 'resize width');
  assertDim(height, 'resize height');
  const ch = img.channels;
  let data = img.data;
  let w = img.width;
  if (width !== img.width) {
    const out = new Uint8Array(width * img.height * ch);
    resampleHorizontal(data, out, img.height, img.width, ch, bicubicCoefficients(img.width, width));
    data = out;
    w = width;
  }
  if (height !== img.height) {
    const out = new Uint8Array(width * height * ch);
    resampleVertical(data, out, w * ch, bicubicCoefficients(img.height, height));
    data = out;
  }
  if (data === img.data) data = img.data.slice();
  return { ...img, data, width, height };
}
