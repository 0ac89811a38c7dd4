import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { KestrelError, assertAcceptedFormat, checkPngStructure, looksLikePng, parseOptions } from '@kestrel/core';

/** OK = pass the part, NG = reject it. */
export type Verdict = 'OK' | 'NG';

/** One finding on a part. Boxes are COCO [x, y, w, h] in pixels of the submitted image. */
export interface Defect {
  label: string;
  score: number;
  box?: [number, number, number, number];
}

/** What an inspector says about one image. */
export interface InspectionResult {
  verdict: Verdict;
  /** The model's score; NG when score >= threshold. */
  score: number;
  threshold: number;
  defects: Defect[];
}

/** Model identity logged with every inspection. */
export interface ModelIdentity {
  name: string;
  /** Content hash of the model's weights (`sha256:<12 hex>`), so a log row names the exact model. */
  version: string;
}

/**
 * Anything that turns encoded image bytes into an OK/NG verdict. The server and the watcher only see
 * this interface; {@link createDefectsInspector} adapts Kestrel's `defects` pipeline to it.
 */
export interface Inspector {
  /** Name and weights hash, logged with every inspection. */
  readonly model: ModelIdentity;
  /** Verdict for one encoded image (JPEG, PNG...); a bad image rejects with a KestrelError. */
  inspect(image: Buffer): Promise<InspectionResult>;
  /** Free the model (called once when the server or watcher stops). */
  close?(): Promise<void>;
}

/** Largest image (pixels) the server accepts by default: 40 MP, well above line-camera frames. */
export const DEFAULT_MAX_IMAGE_PIXELS = 40_000_000;

/**
 * Read only the header of an encoded image and refuse what must not be decoded: empty bodies, non-images
 * and formats other than JPEG, PNG, WebP, TIFF, GIF and AVIF (SVG included) (`E_IMAGE_DECODE`), PNGs
 * whose chunks are damaged (bad CRC or length, no IEND: `E_IMAGE_DECODE`, one pass over the bytes) and
 * decompression bombs (`E_IMAGE_TOO_LARGE`, e.g. a 50000×50000 PNG of a few kilobytes). Corrupt pixel
 * data (a bad zlib checksum) is caught later, by the decoder.
 */
export async function probeImage(bytes: Buffer, maxPixels = DEFAULT_MAX_IMAGE_PIXELS): Promise<{ width: number; height: number; format: string }> {
  if (bytes.length === 0) throw new KestrelError('E_IMAGE_DECODE', 'the image is empty (0 bytes)');
  if (looksLikePng(bytes)) checkPngStructure(bytes, 'upload');
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new KestrelError('E_IMAGE_DECODE', `not a readable image: ${(e as Error).message}. Send a JPEG, PNG, WebP, TIFF or GIF.`);
  }
  assertAcceptedFormat(meta, 'upload');
  const { width, height, format } = meta;
  if (!width || !height) throw new KestrelError('E_IMAGE_DECODE', 'the image header has no size');
  if (width * height > maxPixels) {
    throw new KestrelError('E_IMAGE_TOO_LARGE', `image is ${width}x${height} = ${width * height} pixels, over the server's limit of ${maxPixels}`, { details: { width, height, maxPixels } });
  }
  return { width, height, format: String(format) };
}

/** sha256 of a file, streamed (model weights can be large). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Regions of an anomaly heat map at or above the threshold (4-connected cells), as boxes in image pixels,
 * strongest first, at most `max`. Cells within `border` of an edge are left out, as the model leaves
 * them out of its image score.
 */
export function heatmapRegions(h: { width: number; height: number; data: Float32Array }, threshold: number, imageW: number, imageH: number, max = 16, border = 0): Defect[] {
  const { width: gw, height: gh, data } = h;
  const seen = new Uint8Array(gw * gh);
  for (let y = 0; y < gh; y++) {
    for (let x = 0; x < gw; x++) if (x < border || y < border || x >= gw - border || y >= gh - border) seen[y * gw + x] = 1;
  }
  const out: Defect[] = [];
  const sx = imageW / gw, sy = imageH / gh;
  for (let i = 0; i < gw * gh; i++) {
    if (seen[i] || !(data[i]! >= threshold)) continue;
    let x0 = gw, y0 = gh, x1 = -1, y1 = -1, best = -Infinity;
    const stack = [i];
    seen[i] = 1;
    while (stack.length) {
      const c = stack.pop()!;
      const x = c % gw, y = (c - x) / gw;
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      best = Math.max(best, data[c]!);
      for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]] as const) {
        if (nx < 0 || ny < 0 || nx >= gw || ny >= gh) continue;
        const n = ny * gw + nx;
        if (!seen[n] && data[n]! >= threshold) { seen[n] = 1; stack.push(n); }
      }
    }
    const bx = Math.round(x0 * sx), by = Math.round(y0 * sy);
    out.push({ label: 'anomaly', score: best, box: [bx, by, Math.round((x1 + 1) * sx) - bx, Math.round((y1 + 1) * sy) - by] });
  }
  return out.sort((a, b) => b.score - a.score).slice(0, max);
}

/** Options of {@link createDefectsInspector}. */
export const DefectsInspectorOptionsSchema = z.object({
  /** A shipped model name (`defects-elpv`, `anomaly-magnetic-tile`) or a model folder. */
  model: z.string().min(1),
  /** model worker threads (each its own copy of the model) */
  workers: z.number().int().positive().default(1),
});
export type DefectsInspectorOptions = z.input<typeof DefectsInspectorOptionsSchema>;

/**
 * An {@link Inspector} over Kestrel's `defects` pipeline (`pipeline('defects', { model })`), loading the
 * model once. The verdict is the pipeline's `defective` flag at the model's calibrated threshold.
 * `defects` lists the heat-map regions over the threshold for anomaly models, else one whole-image
 * finding for an NG part. The model version is the sha256 of its weights file.
 */
export async function createDefectsInspector(options: DefectsInspectorOptions): Promise<Inspector> {
  const o = parseOptions(DefectsInspectorOptionsSchema, options, 'defects inspector options');
  // Loaded on first use: the server and the watcher start without the model stack until a model is asked for.
  const { pipeline, resolveQcModelDir } = await import('@kestrel/pipelines');
  const dir = resolveQcModelDir(o.model);
  const name = basename(dir);
  let version = 'unknown';
  const weights = join(dir, 'weights.safetensors');
  if (existsSync(weights) && statSync(weights).isFile()) version = `sha256:${(await sha256File(weights)).slice(0, 12)}`;
  const run = await pipeline('defects', { model: dir, heatmap: true, workers: o.workers });
  // Anomaly models leave a border of patches out of their score; classifiers have no patches.
  const border = 'patches' in run.model ? run.model.patches.border : 0;
  return {
    model: { name, version },
    async inspect(image: Buffer): Promise<InspectionResult> {
      const out = await run(image);
      let defects: Defect[] = [];
      if (out.defective) {
        if (out.heatmap) {
          const meta = await sharp(image).metadata();
          defects = heatmapRegions(out.heatmap, out.threshold, meta.autoOrient?.width ?? meta.width ?? out.heatmap.width, meta.autoOrient?.height ?? meta.height ?? out.heatmap.height, 16, border);
        }
        if (!defects.length) defects = [{ label: 'defect', score: out.score }];
      }
      return { verdict: out.defective ? 'NG' : 'OK', score: out.score, threshold: out.threshold, defects };
    },
    // stops the model workers (the server drains its queue first)
    close: async () => { await run.dispose?.(); },
  };
}
