import { z } from 'zod';
import { KestrelError } from '../errors.js';
import { parseOptions } from '../options.js';
import type { PixelImage } from './types.js';
import { assertPixelImage } from './types.js';

/** Options of {@link toChwNormalized}. */
export const NormalizeOptionsSchema = z.object({
  /** Per-channel mean subtracted after scaling to [0, 1] (one value per channel, or one for all). */
  mean: z.array(z.number()).min(1).default([0.5, 0.5, 0.5]),
  /** Per-channel standard deviation divided by after subtracting the mean. */
  std: z.array(z.number().refine((v) => v !== 0, 'std must not be 0')).min(1).default([0.5, 0.5, 0.5]),
  /** Write into this array instead of allocating one. */
  out: z.instanceof(Float32Array).optional(),
  /** Element offset into `out`. */
  offset: z.number().int().min(0).default(0),
});
export type NormalizeOptions = z.input<typeof NormalizeOptionsSchema>;

function perChannel(v: number[], ch: number, what: string): number[] {
  if (v.length === ch) return v;
  if (v.length === 1) return new Array<number>(ch).fill(v[0]!);
  // A 3-value mean/std on a grayscale image is a common config mix-up: refuse rather than guess.
  throw new KestrelError('E_OPTIONS', `${what} has ${v.length} values but the image has ${ch} channel(s)`);
}

/**
 * HWC uint8 -> CHW float32 with rescale + normalise, bit-identical to torchvision
 * `Normalize(mean, std)(ToTensor()(img))`: every step is one float32 operation,
 * `x = f32(f32(f32(u8 / 255) - f32(mean)) / f32(std))`. Only 256 values per channel exist, so the
 * results come from a lookup table built per call.
 *
 * Returns `out` (or a new array) holding channels * height * width values starting at `offset`.
 */
export function toChwNormalized(img: PixelImage, options?: NormalizeOptions): Float32Array {
  assertPixelImage(img);
  const o = parseOptions(NormalizeOptionsSchema, options, 'normalize options');
  const ch = img.channels;
  const mean = perChannel(o.mean, ch, 'mean');
  const std = perChannel(o.std, ch, 'std');
  const plane = img.width * img.height;
  const n = plane * ch;
  const out = o.out ?? new Float32Array(n);
  if (o.offset + n > out.length) throw new KestrelError('E_OPTIONS', `output array holds ${out.length} values, need ${o.offset + n}`);
  const lut = new Float32Array(256 * ch);
  for (let c = 0; c < ch; c++) {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    // f64 division/subtraction of f32 operands rounded once to f32 equals the f32 operation (no double-rounding error for + - * /).
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / s);
  }
  const src = img.data;
  for (let c = 0; c < ch; c++) {
    const base = o.offset + c * plane;
    const l = c * 256;
    for (let i = 0, p = c; i < plane; i++, p += ch) out[base + i] = lut[l + src[p]!]!;
  }
  return out;
}
