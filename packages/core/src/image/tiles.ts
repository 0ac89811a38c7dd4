import { KestrelError } from '../errors.js';
import type { PixelImage } from './types.js';
import { assertDim, assertPixelImage } from './types.js';

/**
 * Cut the box (x, y, width, height) out of `img`, like Pillow `img.crop((x, y, x + width, y + height))`:
 * parts of the box outside the image are filled with `fill` (Pillow fills with 0).
 */
export function cropImage<T extends PixelImage>(img: T, x: number, y: number, width: number, height: number, fill = 0): T {
  assertPixelImage(img);
  assertDim(width, 'crop width');
  assertDim(height, 'crop height');
  if (!Number.isSafeInteger(x) || !Number.isSafeInteger(y)) throw new KestrelError('E_OPTIONS', `crop origin must be integers, got (${x}, ${y})`);
  const ch = img.channels;
  const data = new Uint8Array(width * height * ch);
  const x0 = Math.max(0, x), y0 = Math.max(0, y);
  const x1 = Math.min(img.width, x + width), y1 = Math.min(img.height, y + height);
  const inside = x0 === x && y0 === y && x1 === x + width && y1 === y + height;
  if (!inside && fill !== 0) data.fill(fill);
  if (x1 > x0 && y1 > y0) {
    const len = (x1 - x0) * ch;
    for (let yy = y0; yy < y1; yy++) {
      const s = (yy * img.width + x0) * ch;
      data.set(img.data.subarray(s, s + len), ((yy - y) * width + (x0 - x)) * ch);
    }
  }
  return { ...img, data, width, height };
}

/**
 * Split an image into `tileWidth` x `tileHeight` tiles in row-major order (left to right, then top to
 * bottom), like `[img.crop((j, i, j + tw, i + th)) for i in range(0, H, th) for j in range(0, W, tw)]`.
 * Edge tiles that run past the image are zero-filled, as Pillow's crop does.
 */
export function cropTiles<T extends PixelImage>(img: T, tileWidth: number, tileHeight: number = tileWidth): T[] {
  assertPixelImage(img);
  assertDim(tileWidth, 'tile width');
  assertDim(tileHeight, 'tile height');
  const tiles: T[] = [];
  for (let i = 0; i < img.height; i += tileHeight) {
    for (let j = 0; j < img.width; j += tileWidth) tiles.push(cropImage(img, j, i, tileWidth, tileHeight));
  }
  return tiles;
}
