import sharp from 'sharp';
import { KestrelError, loadImage, type GrayImage, type ImageInput } from '@kestrel/core';

export type { ImageInput } from '@kestrel/core';

/**
 * Decode an image as 8-bit grayscale and resize it to `width` x `height` (stretching: QC and X-ray
 * images are already framed on the part, so the whole field of view is kept).
 */
export async function loadGrayResized(input: ImageInput, width: number, height: number): Promise<GrayImage> {
  const img = await loadImage(input, { mode: 'gray' });
  if (img.width === width && img.height === height) return img;
  let data: Buffer;
  try {
    // Without toColourspace('b-w') sharp writes raw output as 3-channel sRGB even for 1-channel input.
    data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 1 } })
      .resize(width, height, { fit: 'fill', kernel: 'cubic' })
      .toColourspace('b-w')
      .raw()
      .toBuffer();
  } catch (e) {
    throw new KestrelError('E_IMAGE_DECODE', `cannot resize image to ${width}x${height}: ${(e as Error).message}`, { cause: e });
  }
  if (data.length !== width * height) throw new KestrelError('E_INTERNAL', `resize produced ${data.length} bytes for a ${width}x${height} gray image`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height, channels: 1 };
}

/** Mirror a grayscale image left-right (training-time augmentation). */
export function flipHorizontal(img: GrayImage): GrayImage {
  const { width: w, height: h } = img;
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = img.data[y * w + (w - 1 - x)]!;
  return { data: out, width: w, height: h, channels: 1 };
}
