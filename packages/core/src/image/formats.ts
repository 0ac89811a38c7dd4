import type sharp from 'sharp';
import { KestrelError } from '../errors.js';

/**
 * Raster formats Kestrel decodes by default, as named to users. An inspection or model input is a
 * camera or scanner image; vector formats (SVG) are rendered by sharp at a size the file chooses, so
 * they are refused unless a caller asks for them (`allowSvg`).
 */
export const RASTER_FORMATS = ['JPEG', 'PNG', 'WebP', 'TIFF', 'GIF', 'AVIF'] as const;

/** sharp's `metadata().format` values for {@link RASTER_FORMATS} (AVIF is reported as `heif` + `av1`). */
const SHARP_RASTER = new Set(['jpeg', 'png', 'webp', 'tiff', 'gif']);

/**
 * Throw `E_IMAGE_DECODE` unless sharp's metadata names an accepted raster format (or SVG, when
 * `allowSvg`). The message lists the accepted formats.
 */
export function assertAcceptedFormat(meta: Pick<sharp.Metadata, 'format' | 'compression'>, what: string, allowSvg = false): void {
  const f = String(meta.format);
  if (SHARP_RASTER.has(f)) return;
  if (f === 'heif' && meta.compression === 'av1') return;
  if (f === 'svg' && allowSvg) return;
  const name = f === 'heif' ? `HEIF (${String(meta.compression)})` : f.toUpperCase();
  const vector = f === 'svg' || f === 'pdf';
  const hint = f === 'svg' ? ' Rasterize it first, or pass allowSvg: true (loadImage option) if you mean to render SVG.' : ' Convert it to one of those first.';
  throw new KestrelError('E_IMAGE_DECODE', `image ${what} is ${name}${vector ? ', a vector format' : ''}; Kestrel accepts raster images in ${RASTER_FORMATS.join(', ')}.${hint}`, {
    details: { input: what, format: f, accepted: [...RASTER_FORMATS] },
  });
}
