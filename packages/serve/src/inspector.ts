import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';

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
  readonly model: ModelIdentity;
  inspect(image: Buffer): Promise<InspectionResult>;
  close?(): Promise<void>;
}

/** Largest image (pixels) the server accepts by default: 40 MP, well above line-camera frames. */
export const DEFAULT_MAX_IMAGE_PIXELS = 40_000_000;

/**
 * Read only the header of an encoded image and refuse what must not be decoded: empty bodies, non-images
 * (`E_IMAGE_DECODE`) and decompression bombs (`E_IMAGE_TOO_LARGE`, e.g. a 50000×50000 PNG of a few
 * kilobytes). Truncated or corrupt pixel data is caught later, by the decoder.
 */
export async function probeImage(bytes: Buffer, maxPixels = DEFAULT_MAX_IMAGE_PIXELS): Promise<{ width: number; height: number; format: string }> {
  if (bytes.length === 0) throw new KestrelError('E_IMAGE_DECODE', 'the image is empty (0 bytes)');
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new KestrelError('E_IMAGE_DECODE', `not a readable image: ${(e as Error).message}. Send a JPEG, PNG, WebP, TIFF or GIF.`);
  }
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

const DefectsOutputSchema = z.object({
  defective: z.boolean(),
  score: z.number(),
  threshold: z.number(),
  heatmap: z.object({ width: z.number().int().positive(), height: z.number().int().positive(), data: z.instanceof(Float32Array) }).optional(),
}).loose();

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

type DefectsFn = (image: Buffer) => Promise<unknown>;

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
  const mod = (await import('@kestrel/pipelines')) as unknown as {
    pipeline: (task: string, options: unknown) => Promise<unknown>;
    resolveQcModelDir?: (nameOrDir: string) => string;
  };
  let name = o.model;
  let version = 'unknown';
  const dir = mod.resolveQcModelDir?.(o.model);
  if (dir) {
    name = basename(dir);
    const weights = join(dir, 'weights.safetensors');
    if (existsSync(weights) && statSync(weights).isFile()) version = `sha256:${(await sha256File(weights)).slice(0, 12)}`;
  }
  const run = (await mod.pipeline('defects', { model: dir ?? o.model, heatmap: true, workers: o.workers })) as DefectsFn & { model?: { patches?: { border?: number } }; dispose?: () => Promise<void> };
  const border = run.model?.patches?.border ?? 0;
  return {
    model: { name, version },
    async inspect(image: Buffer): Promise<InspectionResult> {
      const raw = await run(image);
      const out = DefectsOutputSchema.parse(raw);
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
