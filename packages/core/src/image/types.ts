import { KestrelError } from '../errors.js';

/**
 * An 8-bit image in memory: rows top to bottom, pixels left to right, channels interleaved (HWC).
 * `data.length === width * height * channels`.
 */
export interface PixelImage {
  /** Interleaved 8-bit samples, HWC order. */
  data: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** Samples per pixel: 3 (RGB) or 1 (grayscale). */
  channels: 1 | 3;
}

/** An 8-bit sRGB image (HWC, 3 channels). */
export interface RgbImage extends PixelImage {
  channels: 3;
}

/** An 8-bit grayscale image (1 channel). */
export interface GrayImage extends PixelImage {
  channels: 1;
}

/** Throw `E_OPTIONS` unless `img` is a well-formed PixelImage. */
export function assertPixelImage(img: PixelImage, what = 'image'): void {
  const { width, height, channels, data } = img;
  if (!Number.isSafeInteger(width) || width <= 0 || !Number.isSafeInteger(height) || height <= 0) {
    throw new KestrelError('E_OPTIONS', `${what}: width and height must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3) throw new KestrelError('E_OPTIONS', `${what}: channels must be 1 or 3, got ${String(channels)}`);
  if (!(data instanceof Uint8Array) || data.length !== width * height * channels) {
    throw new KestrelError('E_OPTIONS', `${what}: data must be a Uint8Array of ${width}*${height}*${channels} bytes, got ${data?.length}`);
  }
}

/** Check that `size` is a positive integer (an output width/height). */
export function assertDim(size: number, what: string): void {
  if (!Number.isSafeInteger(size) || size <= 0) throw new KestrelError('E_OPTIONS', `${what} must be a positive integer, got ${size}`);
}
