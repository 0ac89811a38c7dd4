import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
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
  regions: z.array(z.object({ box: z.tuple([z.number(), z.number(), z.number(), z.number()]), score: z.number() })).optional(),
}).loose();

type DefectsFn = (image: Buffer) => Promise<unknown>;

/** Options of {@link createDefectsInspector}. */
export const DefectsInspectorOptionsSchema = z.object({
  /** A shipped model name (`models/<name>`), a pulled name, or a model directory. */
  model: z.string().min(1),
  /** Override the model's calibrated threshold (rarely right on a line: recalibrate instead). */
  threshold: z.number().optional(),
});
export type DefectsInspectorOptions = z.input<typeof DefectsInspectorOptionsSchema>;

/**
 * An {@link Inspector} over Kestrel's `defects` pipeline (`pipeline('defects', { model })`), loading the
 * model once. The verdict is the pipeline's `defective` flag; `defects` lists its regions when the model
 * gives any, else one whole-image `anomaly` finding for an NG part.
 */
export async function createDefectsInspector(options: DefectsInspectorOptions): Promise<Inspector> {
  const o = parseOptions(DefectsInspectorOptionsSchema, options, 'defects inspector options');
  const { pipeline } = await import('@kestrel/pipelines');
  const models = (await import('@kestrel/pipelines')) as unknown as {
    resolveModel?: (n: string) => Promise<{ name: string; dir: string; file: string }>;
  };
  let name = o.model;
  let version = 'unknown';
  if (typeof models.resolveModel === 'function') {
    const r = await models.resolveModel(o.model);
    name = r.name;
    try {
      if (statSync(r.file).isFile()) version = `sha256:${(await sha256File(r.file)).slice(0, 12)}`;
    } catch { /* version stays unknown */ }
  }
  const pipelineOptions: Record<string, unknown> = { model: o.model };
  if (o.threshold !== undefined) pipelineOptions.threshold = o.threshold;
  const run = (await pipeline('defects', pipelineOptions)) as DefectsFn;
  return {
    model: { name, version },
    async inspect(image: Buffer): Promise<InspectionResult> {
      const raw = await run(image);
      const out = DefectsOutputSchema.parse(Array.isArray(raw) ? raw[0] : raw);
      const defects: Defect[] = out.regions?.length
        ? out.regions.map((r) => ({ label: 'anomaly', score: r.score, box: r.box }))
        : out.defective ? [{ label: 'anomaly', score: out.score }] : [];
      return { verdict: out.defective ? 'NG' : 'OK', score: out.score, threshold: out.threshold, defects };
    },
  };
}
