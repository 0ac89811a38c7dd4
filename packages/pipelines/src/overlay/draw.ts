import sharp from 'sharp';
import { z } from 'zod';
import { KestrelError, loadImage, parseOptions, type ImageInput } from '@kestrel/core';
import { mask as cocoMask } from '@kestrel/eval';

/** What the overlay draws for one object. */
export interface OverlayObject {
  bbox: [number, number, number, number];
  label: string;
  score?: number;
  /** Optional instance mask (COCO RLE, image-sized). */
  mask?: { size: [number, number]; counts: string } | { size: [number, number]; counts: number[] };
}

/** Options of {@link drawOverlay}. */
export const OverlayOptionsSchema = z.object({
  /** Outline width in pixels (default scales with the image). */
  lineWidth: z.number().positive().optional(),
  /** Label font size in pixels (default scales with the image). */
  fontSize: z.number().positive().optional(),
  /** Mask fill opacity. */
  maskOpacity: z.number().min(0).max(1).default(0.45),
  /** Output format. */
  format: z.enum(['png', 'jpeg']).default('png'),
}).strict();
export type OverlayOptions = z.input<typeof OverlayOptionsSchema>;

const PALETTE: Array<[number, number, number]> = [
  [255, 56, 56], [255, 157, 151], [255, 112, 31], [255, 178, 29], [207, 210, 49], [72, 249, 10], [146, 204, 23], [61, 219, 134],
  [26, 147, 52], [0, 212, 187], [44, 153, 168], [0, 194, 255], [52, 69, 147], [100, 115, 255], [0, 24, 236], [132, 56, 255],
  [82, 0, 133], [203, 56, 255], [255, 149, 200], [255, 55, 199],
];

/** A stable colour per label. */
export function labelColour(label: string): [number, number, number] {
  let h = 0;
  for (let i = 0; i < label.length; i++) h = (h * 31 + label.charCodeAt(i)) >>> 0;
  return PALETTE[h % PALETTE.length]!;
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/**
 * Draw boxes, labels and masks over an image (EXIF-rotated like the detector saw it) and return the
 * encoded picture. Boxes are COCO [x, y, w, h] in image pixels.
 */
export async function drawOverlay(image: ImageInput, objects: readonly OverlayObject[], options?: OverlayOptions): Promise<Buffer> {
  const o = parseOptions(OverlayOptionsSchema, options, 'overlay options');
  const img = await loadImage(image);
  const { width: W, height: H } = img;
  const lw = o.lineWidth ?? Math.max(2, Math.round(Math.max(W, H) / 320));
  const fs = o.fontSize ?? Math.max(11, Math.round(Math.max(W, H) / 45));
  const layers: sharp.OverlayOptions[] = [];

  const withMasks = objects.filter((d) => d.mask);
  if (withMasks.length) {
    const rgba = Buffer.alloc(W * H * 4);
    const a = Math.round(o.maskOpacity * 255);
    for (const d of withMasks) {
      const m = cocoMask.decode(d.mask!);
      if (m.width !== W || m.height !== H) throw new KestrelError('E_OPTIONS', `mask of "${d.label}" is ${m.width}x${m.height}, the image ${W}x${H}`);
      const [r, g, b] = labelColour(d.label);
      for (let i = 0; i < W * H; i++) {
        if (!m.data[i]) continue;
        rgba[i * 4] = r; rgba[i * 4 + 1] = g; rgba[i * 4 + 2] = b; rgba[i * 4 + 3] = a;
      }
    }
    layers.push({ input: rgba, raw: { width: W, height: H, channels: 4 }, left: 0, top: 0 });
  }

  const parts: string[] = [];
  for (const d of objects) {
    const [x, y, w, h] = d.bbox;
    const [r, g, b] = labelColour(d.label);
    const col = `rgb(${r},${g},${b})`;
    parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, w).toFixed(1)}" height="${Math.max(1, h).toFixed(1)}" fill="none" stroke="${col}" stroke-width="${lw}"/>`);
    const text = d.score !== undefined ? `${d.label} ${d.score.toFixed(2)}` : d.label;
    const tw = Math.ceil(text.length * fs * 0.6) + 6;
    const th = fs + 6;
    // Label above the box when there is room, else inside its top edge.
    const ty = y - th >= 0 ? y - th : y;
    const tx = Math.min(Math.max(0, x), Math.max(0, W - tw));
    parts.push(`<rect x="${tx.toFixed(1)}" y="${ty.toFixed(1)}" width="${tw}" height="${th}" fill="${col}"/>`);
    const lum = 0.299 * r + 0.587 * g + 0.114 * b;
    parts.push(`<text x="${(tx + 3).toFixed(1)}" y="${(ty + fs + 1).toFixed(1)}" font-family="DejaVu Sans, Arial, sans-serif" font-size="${fs}" fill="${lum > 150 ? '#000' : '#fff'}">${xmlEscape(text)}</text>`);
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${parts.join('')}</svg>`;
  layers.push({ input: Buffer.from(svg), left: 0, top: 0 });
  const base = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: W, height: H, channels: 3 } }).composite(layers);
  return o.format === 'png' ? base.png().toBuffer() : base.jpeg({ quality: 90 }).toBuffer();
}
