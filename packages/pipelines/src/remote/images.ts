import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { KestrelError, assertAcceptedFormat, checkPngStructure, looksLikePng } from '@kestrel/core';
import { isPixelImage, type VlmImage } from '../vlm/processor.js';

/**
 * An image as an OpenAI `image_url` data URL. Encoded files and bytes are sent as they are (so the
 * server decodes exactly what a local model would), after the same header checks as loadImage (raster
 * format, PNG chunks); decoded pixels and sharp instances are sent as lossless PNG.
 */
export async function imageDataUrl(image: VlmImage, what = 'image'): Promise<string> {
  let bytes: Buffer;
  if (typeof image === 'string') {
    bytes = await readFile(image).catch((e: NodeJS.ErrnoException) => {
      throw new KestrelError('E_IO', `cannot read image ${image}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, { cause: e, details: { input: image } });
    });
    what = image;
  } else if (image instanceof Uint8Array) {
    bytes = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  } else if (isPixelImage(image)) {
    const png = await sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), { raw: { width: image.width, height: image.height, channels: image.channels } }).png().toBuffer();
    return `data:image/png;base64,${png.toString('base64')}`;
  } else if (typeof (image as sharp.Sharp).png === 'function') {
    const png = await (image as sharp.Sharp).clone().png().toBuffer().catch((e: Error) => { throw new KestrelError('E_IMAGE_DECODE', `cannot encode ${what}: ${e.message}`, { cause: e }); });
    return `data:image/png;base64,${png.toString('base64')}`;
  } else {
    throw new KestrelError('E_OPTIONS', `${what} must be a file path, encoded bytes, a sharp instance or decoded pixels`);
  }
  if (bytes.length === 0) throw new KestrelError('E_IMAGE_DECODE', `cannot decode image ${what}: it is empty`);
  if (looksLikePng(bytes)) checkPngStructure(bytes, what);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new KestrelError('E_IMAGE_DECODE', `cannot decode image ${what}: ${(e as Error).message}`, { cause: e, details: { input: what } });
  }
  assertAcceptedFormat(meta, what);
  const mime = meta.format === 'heif' ? 'avif' : meta.format === 'jpg' ? 'jpeg' : String(meta.format);
  return `data:image/${mime};base64,${bytes.toString('base64')}`;
}
