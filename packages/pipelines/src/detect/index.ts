/**
 * `detect` and `segment` pipelines: COCO-style boxes (and masks) from pretrained tfjs graph models
 * (CenterNet, NanoDet) or Ultralytics YOLO ONNX exports.
 */
import { z } from 'zod';
import { KestrelError, loadImage, parseOptions, DEFAULT_MAX_PIXELS, type ImageInput } from '@kestrel/core';
import { resolveModel, type ResolvedModel } from '../models/index.js';
import { letterboxGeometry, stretchGeometry, unletterboxBox, type LetterboxGeometry } from './geometry.js';
import { letterboxPixels } from './preprocess.js';
import type { Detector, DecodeSettings } from './detector.js';
import { maskToRle, type CocoRle } from './masks.js';

export { COCO80_LABELS, COCO80_TO_91 } from './coco-classes.js';
export { letterboxGeometry, stretchGeometry, unletterboxBox, iou, nms, type LetterboxGeometry, type Candidate } from './geometry.js';
export type { CocoRle } from './masks.js';

/** Options of `pipeline('detect' | 'segment', ...)`. */
export const DetectOptionsSchema = z.object({
  /** Built-in name (`centernet`, `nanodet`; `selfie` for segment), a model directory, a model.json or a *.onnx file. */
  model: z.string().min(1),
  /** Drop detections scoring below this. Keep it low (e.g. 0.001) for mAP, higher (0.3) for display. */
  scoreThreshold: z.number().min(0).max(1).default(0.05),
  /** Keep at most this many detections per image (COCO evaluation uses 100). */
  maxDetections: z.number().int().min(1).max(10_000).default(100),
  /** Only these classes: labels (`'person'`) or COCO category ids. */
  classes: z.array(z.union([z.string().min(1), z.number().int()])).min(1).optional(),
  /** IoU threshold of non-maximum suppression (default: the model's own, 0.6 NanoDet, 0.7 YOLO). */
  iou: z.number().min(0).max(1).optional(),
  /** tfjs backend for graph models: `wasm` (default), `cpu`, or `node` when @tensorflow/tfjs-node is installed. */
  backend: z.enum(['wasm', 'cpu', 'node']).default('wasm'),
  /** ONNX Runtime execution provider for *.onnx models. */
  executionProvider: z.enum(['cpu', 'cuda', 'cann']).default('cpu'),
  /** Class names for ONNX models with other classes than COCO's 80 (index = class index). */
  labels: z.array(z.string()).optional(),
  /** COCO category id for each class index of an ONNX model (default: 80 classes -> the COCO 80->91 ids, else index + 1). */
  categoryIds: z.array(z.number().int()).optional(),
  /** Refuse images larger than this many pixels (E_IMAGE_TOO_LARGE). */
  maxPixels: z.number().int().positive().default(DEFAULT_MAX_PIXELS),
  /** Render SVG inputs too (off: only raster images, see loadImage's `allowSvg`). */
  allowSvg: z.boolean().default(false),
  /** Kestrel cache root (default $KESTREL_HOME or ~/.cache/kestrel). */
  home: z.string().optional(),
}).strict();
export type DetectOptionsInput = z.input<typeof DetectOptionsSchema>;
export type DetectOptions = z.output<typeof DetectOptionsSchema>;

/** One detected object, in original-image pixels. */
export interface Detection {
  /** COCO box [x, y, width, height] in pixels of the (EXIF-rotated) input image. */
  bbox: [number, number, number, number];
  /** Confidence in [0, 1]. */
  score: number;
  /** COCO category id (1..90 for the COCO models). */
  categoryId: number;
  label: string;
}

/** A detection with its instance mask. */
export interface Segmentation extends Detection {
  /** Instance mask as COCO compressed RLE, image-sized. */
  mask: CocoRle;
}

/** Accumulated time per stage, summed over images. */
export interface DetectTimings {
  images: number;
  /** Decode + letterbox + tensor packing. */
  preMs: number;
  /** Inside the runtime. */
  modelMs: number;
  /** Decoding outputs, NMS, mapping back, masks. */
  postMs: number;
}

interface PipelineExtras {
  /** The resolved model. */
  readonly model: ResolvedModel;
  /** Runtime in use, e.g. `tfjs-wasm` or `onnx-cpu`. */
  readonly runtime: string;
  /** Time spent so far, by stage. */
  timings(): DetectTimings;
  /** Free the model's memory. */
  dispose(): Promise<void>;
}

/** Runs detection on one image or a list; always resolves to one list of detections per image. */
export type DetectPipeline = ((images: ImageInput | readonly ImageInput[]) => Promise<Detection[][]>) & PipelineExtras;
/** Runs instance segmentation; one list per image. */
export type SegmentPipeline = ((images: ImageInput | readonly ImageInput[]) => Promise<Segmentation[][]>) & PipelineExtras;

declare module '../registry.js' {
  interface PipelineTasks {
    detect: { options: DetectOptionsInput; fn: DetectPipeline };
    segment: { options: DetectOptionsInput; fn: SegmentPipeline };
  }
}

async function loadDetector(m: ResolvedModel, o: DetectOptions, task: string): Promise<Detector> {
  if (m.format === 'onnx') {
    const { createYoloDetector } = await import('./yolo.js');
    return createYoloDetector(m.file, { task: task === 'segment' ? 'segment' : 'detect', executionProvider: o.executionProvider, labels: o.labels, categoryIds: o.categoryIds });
  }
  if (m.format === 'tfjs-graph') {
    const kind = m.entry?.name ?? m.name;
    if (/centernet/i.test(kind)) return (await import('./centernet.js')).createCenterNet(m.file, o.backend);
    if (/nanodet/i.test(kind)) return (await import('./nanodet.js')).createNanoDet(m.file, o.backend);
    if (/selfie/i.test(kind)) return (await import('./selfie.js')).createSelfie(m.file, o.backend);
    throw new KestrelError('E_UNSUPPORTED', `tfjs model "${m.name}" is not a known detector (centernet, nanodet, selfie); ONNX exports in the Ultralytics YOLO layout are supported for custom models`);
  }
  throw new KestrelError('E_UNSUPPORTED', `cannot run ${m.file}: expected a tfjs model.json or an *.onnx file`);
}

function classFilter(classes: DetectOptions['classes'], d: Detector): Set<number> | undefined {
  if (!classes) return undefined;
  const set = new Set<number>();
  for (const c of classes) {
    const i = typeof c === 'string' ? d.labels.indexOf(c) : d.categoryIds.indexOf(c);
    if (i < 0) throw new KestrelError('E_OPTIONS', `classes: ${JSON.stringify(c)} is not a class of this model (labels: ${d.labels.slice(0, 10).join(', ')}${d.labels.length > 10 ? ', ...' : ''})`);
    set.add(i);
  }
  return set;
}

/**
 * Create a `detect` or `segment` pipeline (called by `pipeline()` in the registry).
 *
 * @example
 * const detect = await pipeline('detect', { model: 'centernet', scoreThreshold: 0.3 });
 * const [objects] = await detect('street.jpg'); // [{ bbox: [x, y, w, h], score, categoryId, label }]
 */
export async function createPipeline(task: string, options: unknown): Promise<DetectPipeline | SegmentPipeline> {
  if (task !== 'detect' && task !== 'segment') throw new KestrelError('E_OPTIONS', `detect module cannot make a "${task}" pipeline`);
  const o = parseOptions(DetectOptionsSchema, options, `${task} options`);
  const model = await resolveModel(o.model, o.home !== undefined ? { home: o.home } : {});
  const det = await loadDetector(model, o, task);
  if (task === 'segment' && det.kind !== 'selfie' && det.kind !== 'yolo-segment') {
    await det.dispose();
    throw new KestrelError('E_UNSUPPORTED', `segment needs a segmentation model (selfie, or an Ultralytics YOLO-seg ONNX export); "${model.name}" only detects boxes`);
  }
  const settings: DecodeSettings = {
    scoreThreshold: o.scoreThreshold, iou: o.iou ?? det.defaultIou, maxDetections: o.maxDetections, classes: classFilter(o.classes, det),
  };
  const t: DetectTimings = { images: 0, preMs: 0, modelMs: 0, postMs: 0 };

  const runOne = async (input: ImageInput): Promise<Detection[] | Segmentation[]> => {
    const t0 = performance.now();
    const img = await loadImage(input, { maxPixels: o.maxPixels, allowSvg: o.allowSvg });
    const g: LetterboxGeometry = (det.resize === 'stretch' ? stretchGeometry : letterboxGeometry)(img.width, img.height, det.inputWidth, det.inputHeight);
    const pixels = await letterboxPixels(img, g, det.padValue);
    const t1 = performance.now();
    const out = await det.run(pixels, settings);
    const t2 = performance.now();
    const dets: Detection[] = out.cands.map((c) => ({
      bbox: unletterboxBox(g, c.box[0], c.box[1], c.box[2], c.box[3]),
      score: c.score,
      categoryId: det.categoryIds[c.cls] ?? c.cls,
      label: det.labels[c.cls] ?? `class ${c.cls}`,
    }));
    let result: Detection[] | Segmentation[] = dets;
    if (task === 'segment') {
      const masks = out.masks ?? [];
      result = dets.map((d, i) => ({ ...d, mask: maskToRle(masks[i], g) }));
    }
    const t3 = performance.now();
    t.images += 1;
    t.preMs += t1 - t0;
    t.modelMs += out.modelMs;
    // Runtime time outside the model call (input tensor build, decode) counts as post/pre overhead.
    t.postMs += t3 - t2 + (t2 - t1 - out.modelMs);
    return result;
  };

  const fn = async (images: ImageInput | readonly ImageInput[]): Promise<Array<Detection[] | Segmentation[]>> => {
    const list: readonly ImageInput[] = Array.isArray(images) ? images : [images as ImageInput];
    const out: Array<Detection[] | Segmentation[]> = [];
    for (const im of list) out.push(await runOne(im));
    return out;
  };
  const extras: PipelineExtras = {
    model,
    runtime: det.runtime,
    timings: () => ({ ...t }),
    dispose: () => det.dispose(),
  };
  return Object.assign(fn, extras) as DetectPipeline | SegmentPipeline;
}
