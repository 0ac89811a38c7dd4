import { open as openFile, readFile, stat } from 'node:fs/promises';
import sharp from 'sharp';
import { z } from 'zod';
import { KestrelError } from '../errors.js';
import { parseOptions } from '../options.js';
import { assertAcceptedFormat } from './formats.js';
import { checkPngImageData, checkPngStructure, looksLikePng, type PngLayout } from './png-check.js';
import type { GrayImage, PixelImage, RgbImage } from './types.js';

/** Default decompression-bomb guard: 100 megapixels. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

const byte = z.number().int().min(0).max(255);

/** Options of {@link loadImage}. */
export const LoadImageOptionsSchema = z.object({
  /** `rgb`: 3-channel 8-bit sRGB; `gray`: 1-channel 8-bit luminance. */
  mode: z.enum(['rgb', 'gray']).default('rgb'),
  /**
   * Colour that transparent pixels are blended onto: one gray level or `[r, g, b]`. Default white
   * (255), so transparent areas look like an empty page rather than a black hole.
   */
  background: z.union([byte, z.tuple([byte, byte, byte])]).default(255),
  /** Refuse images with more pixels than this (checked from the header, before decoding). */
  maxPixels: z.number().int().positive().default(DEFAULT_MAX_PIXELS),
  /** Apply the EXIF orientation tag (rotate/flip to how the image is meant to be seen). */
  autoOrient: z.boolean().default(true),
  /**
   * How strict decoding is (sharp `failOn`): `error` (default) rejects truncated and corrupt data;
   * `warning` also rejects files with recoverable warnings; `truncated` only truncated ones (PNGs are
   * always decoded at `error` or stricter, so their zlib checksum is checked).
   */
  failOn: z.enum(['truncated', 'error', 'warning']).default('error'),
  /**
   * Render SVG (a vector format) too. Off by default: only raster images (JPEG, PNG, WebP, TIFF, GIF,
   * AVIF) are accepted, and anything else throws `E_IMAGE_DECODE` listing them.
   */
  allowSvg: z.boolean().default(false),
});
export type LoadImageOptions = z.input<typeof LoadImageOptionsSchema>;

/** What {@link loadImage} accepts: a file path, encoded bytes, or a sharp pipeline (its input is decoded). */
export type ImageInput = string | Buffer | Uint8Array | sharp.Sharp;

function isSharp(x: unknown): x is sharp.Sharp {
  return typeof x === 'object' && x !== null && !(x instanceof Uint8Array) && typeof (x as sharp.Sharp).clone === 'function' && typeof (x as sharp.Sharp).metadata === 'function';
}

function describe(input: ImageInput): string {
  if (typeof input === 'string') return input;
  if (input instanceof Uint8Array) return `<${input.byteLength}-byte buffer>`;
  return '<sharp instance>';
}

function decodeError(what: string, e: unknown): KestrelError {
  const msg = e instanceof Error ? e.message : String(e);
  if (/exceeds pixel limit/i.test(msg)) return tooLarge(what, undefined, undefined, 0, e);
  return new KestrelError('E_IMAGE_DECODE', `cannot decode image ${what}: ${msg}. Check that the file is a complete JPEG, PNG, WebP, GIF, TIFF or AVIF image.`, {
    cause: e,
    details: { input: what },
  });
}

function tooLarge(what: string, w: number | undefined, h: number | undefined, limit: number, cause?: unknown): KestrelError {
  const dims = w !== undefined && h !== undefined ? `${w}x${h} = ${w * h} pixels` : 'too many pixels';
  return new KestrelError('E_IMAGE_TOO_LARGE', `image ${what} has ${dims}${limit ? `, over the limit of ${limit}` : ''}. Downscale it first or raise the maxPixels option if you trust the file.`, {
    ...(cause !== undefined ? { cause } : {}),
    details: { input: what, width: w, height: h, maxPixels: limit },
  });
}

/**
 * Decode an image into 8-bit pixels (HWC) with sharp.
 *
 * - EXIF orientation is applied (so width/height are as displayed).
 * - Alpha is blended onto `background` (default white); 16-bit (high byte kept, as Pillow does), CMYK,
 *   palette and grayscale inputs come out as 8-bit sRGB (`mode: 'rgb'`), or as 8-bit luma computed
 *   from that with Pillow's `convert('L')` formula (`mode: 'gray'`).
 * - The pixel count is read from the header and checked against `maxPixels` (default 100 MP) before
 *   any pixel is decoded: a decompression bomb throws `E_IMAGE_TOO_LARGE` without allocating it.
 * - Undecodable, truncated or corrupt data throws `E_IMAGE_DECODE`; a missing file throws `E_IO`. A PNG
 *   (path or bytes) is checked first for what sharp lets through: bad chunk CRCs or lengths, a damaged
 *   signature, IHDR not first, no IEND; a zlib stream whose Adler-32 or length is wrong fails the decode
 *   and is named. A sharp instance is decoded as given (its bytes are not visible here).
 * - Only raster formats are accepted (JPEG, PNG, WebP, TIFF, GIF, AVIF); SVG needs `allowSvg: true`.
 */
export async function loadImage(input: ImageInput, options: LoadImageOptions & { mode: 'gray' }): Promise<GrayImage>;
export async function loadImage(input: ImageInput, options?: LoadImageOptions & { mode?: 'rgb' }): Promise<RgbImage>;
export async function loadImage(input: ImageInput, options?: LoadImageOptions): Promise<PixelImage>;
export async function loadImage(input: ImageInput, options?: LoadImageOptions): Promise<PixelImage> {
  const o = parseOptions(LoadImageOptionsSchema, options, 'loadImage options');
  const what = describe(input);
  if (typeof input === 'string') {
    const st = await stat(input).catch((e: NodeJS.ErrnoException) => e);
    if (st instanceof Error) throw new KestrelError('E_IO', `cannot read image ${input}: ${st.code === 'ENOENT' ? 'no such file' : st.message}`, { cause: st, details: { input } });
    if (!st.isFile()) throw new KestrelError('E_IO', `cannot read image ${input}: not a file`, { details: { input } });
  } else if (!(input instanceof Uint8Array) && !isSharp(input)) {
    throw new KestrelError('E_OPTIONS', 'loadImage input must be a file path, a Buffer/Uint8Array or a sharp instance');
  }
  if (input instanceof Uint8Array && input.byteLength === 0) throw new KestrelError('E_IMAGE_DECODE', 'cannot decode image: the buffer is empty');
  // PNG chunks (lengths, CRCs, order) are checked before sharp sees them: libspng, as sharp runs it,
  // ignores CRCs. The zlib Adler-32 is left to the decode (libspng checks it at failOn 'error' and up,
  // so PNGs are never decoded more leniently); inflating a second time here would cost about as much as
  // the decode itself. A file is read into memory only when it starts like a PNG.
  let png: PngLayout | undefined;
  if (typeof input === 'string' ? await startsLikePng(input) : input instanceof Uint8Array && looksLikePng(input)) {
    if (typeof input === 'string') input = await readFile(input);
    png = checkPngStructure(input as Uint8Array, what);
  }
  const source = input;
  const failOn = png && o.failOn === 'truncated' ? 'error' : o.failOn;

  const open = (): sharp.Sharp => {
    if (isSharp(source)) return source.clone();
    // limitInputPixels is a second guard, in case a format's header under-reports its size.
    return sharp(source, { failOn, limitInputPixels: o.maxPixels, sequentialRead: true });
  };

  // 1. Header only: refuse bombs before decoding.
  let meta: sharp.Metadata;
  try {
    meta = await (isSharp(source) ? source.clone() : sharp(source, { failOn, limitInputPixels: false })).metadata();
  } catch (e) {
    throw decodeError(what, e);
  }
  const w = meta.width, h = meta.height;
  if (!w || !h) throw new KestrelError('E_IMAGE_DECODE', `cannot decode image ${what}: its header has no size`, { details: { input: what } });
  assertAcceptedFormat(meta, what, o.allowSvg);
  if (w * h > o.maxPixels) throw tooLarge(what, w, h, o.maxPixels);

  // 2. Decode. Flatten before the colour conversion so alpha never leaks into the result.
  const bg = typeof o.background === 'number' ? [o.background, o.background, o.background] : o.background;
  let pipe = open();
  if (o.autoOrient) pipe = pipe.autoOrient();
  pipe = pipe.flatten({ background: { r: bg[0]!, g: bg[1]!, b: bg[2]! } });
  // Gray is derived from the 8-bit sRGB result with Pillow's convert('L') formula rather than libvips'
  // b-w (which works in linear light), so grayscale models see the values they were trained on.
  pipe = pipe.toColourspace('srgb');
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await pipe.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    // libspng says only "read error": inflate the image data here to say what is wrong with it.
    if (png) await checkPngImageData(png, what);
    throw decodeError(what, e);
  }
  const { width, height, channels } = out.info;
  if (channels !== 3 || out.data.length !== width * height * 3) {
    throw new KestrelError('E_IMAGE_DECODE', `cannot decode image ${what}: decoder returned ${channels} channel(s) where 3 were expected`, { details: { input: what } });
  }
  // A plain Uint8Array view over sharp's buffer (no copy).
  const data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  if (o.mode === 'gray') return { data: rgbToLuma(data, width * height), width, height, channels: 1 };
  return { data, width, height, channels: 3 };
}

/** Whether the file at `path` starts like a PNG (reads its first 32 bytes). */
async function startsLikePng(path: string): Promise<boolean> {
  const fh = await openFile(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new KestrelError('E_IO', `cannot read image ${path}: ${e.message}`, { cause: e, details: { input: path } });
  });
  try {
    const head = Buffer.alloc(32);
    const { bytesRead } = await fh.read(head, 0, 32, 0);
    return looksLikePng(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** Pillow `convert('L')`: ITU-R 601-2 luma in 16-bit fixed point, `(r*19595 + g*38470 + b*7471 + 0x8000) >> 16`. */
export function rgbToLuma(rgb: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0, p = 0; i < pixels; i++, p += 3) out[i] = (rgb[p]! * 19595 + rgb[p + 1]! * 38470 + rgb[p + 2]! * 7471 + 0x8000) >>> 16;
  return out;
}
