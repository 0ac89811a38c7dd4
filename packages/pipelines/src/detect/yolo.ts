import { KestrelError } from '@kestrel/core';
import { openOnnxSession, type ExecutionProvider } from '../runtime/onnx.js';
import { COCO80_LABELS, COCO80_TO_91 } from './coco-classes.js';
import { nms, type Candidate } from './geometry.js';
import type { DecodeSettings, Detector } from './detector.js';

/** Number of mask coefficients / prototypes of Ultralytics segmentation heads. */
export const YOLO_MASK_DIM = 32;
/** Candidates kept before NMS (Ultralytics `max_nms`). */
const PRE_NMS = 30_000;

/**
 * Decode an Ultralytics YOLO (v8/11) head output `[1, 4 + nc + extra, n]` (channel-major): rows 0..3
 * are cx, cy, w, h in input pixels, then nc class scores, then `extra` mask coefficients. Each anchor
 * keeps its best class; then per-class NMS.
 */
export function decodeYolo(out: Float32Array, channels: number, n: number, nc: number, s: DecodeSettings): Candidate[] {
  if (channels < 4 + nc) throw new KestrelError('E_CHECKPOINT_FORMAT', `YOLO output has ${channels} channels, fewer than 4 + ${nc} classes`);
  const pre: Candidate[] = [];
  for (let j = 0; j < n; j++) {
    let best = -1;
    let score = -Infinity;
    for (let c = 0; c < nc; c++) {
      if (s.classes && !s.classes.has(c)) continue;
      const v = out[(4 + c) * n + j]!;
      if (v > score) { score = v; best = c; }
    }
    if (best < 0 || !(score >= s.scoreThreshold)) continue;
    const cx = out[j]!, cy = out[n + j]!, w = out[2 * n + j]!, h = out[3 * n + j]!;
    pre.push({ box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], score, cls: best, index: j });
  }
  pre.sort((a, b) => b.score - a.score);
  return nms(pre.slice(0, PRE_NMS), s.iou, s.maxDetections, true);
}

/**
 * One instance mask in input pixels (row-major 0/1, `inW * inH`): the candidate's coefficients times
 * the prototypes, bilinearly upsampled from prototype to input resolution (half-pixel centres),
 * thresholded at logit 0 (sigmoid 0.5), and cropped to the box, as Ultralytics does.
 */
export function yoloMask(
  coeffs: ArrayLike<number>, protos: Float32Array, mh: number, mw: number, box: readonly number[], inW: number, inH: number,
): Uint8Array {
  const k = coeffs.length;
  const plane = mh * mw;
  const logits = new Float32Array(plane);
  for (let c = 0; c < k; c++) {
    const w = coeffs[c]!;
    if (w === 0) continue;
    const p = c * plane;
    for (let i = 0; i < plane; i++) logits[i]! += w * protos[p + i]!;
  }
  const out = new Uint8Array(inW * inH);
  const x0 = Math.max(0, Math.floor(box[0]!)), y0 = Math.max(0, Math.floor(box[1]!));
  const x1 = Math.min(inW, Math.ceil(box[2]!)), y1 = Math.min(inH, Math.ceil(box[3]!));
  const rx = mw / inW, ry = mh / inH;
  for (let y = y0; y < y1; y++) {
    const cyc = y + 0.5;
    if (cyc < box[1]! || cyc >= box[3]!) continue;
    const sy = Math.min(mh - 1, Math.max(0, (y + 0.5) * ry - 0.5));
    const ya = Math.floor(sy), yb = Math.min(mh - 1, ya + 1), fy = sy - ya;
    for (let x = x0; x < x1; x++) {
      const cxc = x + 0.5;
      if (cxc < box[0]! || cxc >= box[2]!) continue;
      const sx = Math.min(mw - 1, Math.max(0, (x + 0.5) * rx - 0.5));
      const xa = Math.floor(sx), xb = Math.min(mw - 1, xa + 1), fx = sx - xa;
      const v = (logits[ya * mw + xa]! * (1 - fx) + logits[ya * mw + xb]! * fx) * (1 - fy)
        + (logits[yb * mw + xa]! * (1 - fx) + logits[yb * mw + xb]! * fx) * fy;
      if (v > 0) out[y * inW + x] = 1;
    }
  }
  return out;
}

/** Options of {@link createYoloDetector}. */
export interface YoloOptions {
  task: 'detect' | 'segment';
  executionProvider: ExecutionProvider;
  labels?: string[] | undefined;
  categoryIds?: number[] | undefined;
}

/** Open an Ultralytics YOLO detect/segment ONNX export. */
export async function createYoloDetector(file: string, o: YoloOptions): Promise<Detector> {
  const { ort, session, provider } = await openOnnxSession(file, o.executionProvider);
  const meta = session.inputMetadata[0];
  const shape = meta && meta.isTensor ? meta.shape : undefined;
  const inH = typeof shape?.[2] === 'number' ? shape[2] : 640;
  const inW = typeof shape?.[3] === 'number' ? shape[3] : 640;
  if (shape && (shape.length !== 4 || (typeof shape[1] === 'number' && shape[1] !== 3))) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${file}: expected one image input [1, 3, H, W], got [${shape.join(', ')}]`);
  }
  const segment = session.outputNames.length >= 2;
  if (o.task === 'segment' && !segment) {
    await session.release();
    throw new KestrelError('E_UNSUPPORTED', `${file} has one output (boxes only); segment needs a YOLO-seg export with mask prototypes`);
  }
  const outMeta = session.outputMetadata[0];
  const outShape = outMeta && outMeta.isTensor ? outMeta.shape : undefined;
  let nc = typeof outShape?.[1] === 'number' ? outShape[1] - 4 - (segment ? YOLO_MASK_DIM : 0) : undefined;
  const labelsFor = (n: number): string[] => o.labels ?? (n === 80 ? [...COCO80_LABELS] : Array.from({ length: n }, (_, i) => `class ${i}`));
  const idsFor = (n: number): number[] => o.categoryIds ?? (n === 80 && !o.labels ? [...COCO80_TO_91] : Array.from({ length: n }, (_, i) => i + 1));
  const det: Detector & { labels: string[]; categoryIds: number[] } = {
    kind: segment ? 'yolo-segment' : 'yolo-detect',
    inputWidth: inW, inputHeight: inH, padValue: 114,
    labels: nc !== undefined ? labelsFor(nc) : [], categoryIds: nc !== undefined ? idsFor(nc) : [],
    defaultIou: 0.7, runtime: `onnx-${provider}`,
    async run(pixels: Uint8Array, s: DecodeSettings) {
      // RGB HWC bytes -> RGB CHW floats in 0..1 (Ultralytics preprocessing).
      const plane = inW * inH;
      const x = new Float32Array(3 * plane);
      for (let i = 0; i < plane; i++) {
        x[i] = pixels[i * 3]! / 255;
        x[plane + i] = pixels[i * 3 + 1]! / 255;
        x[2 * plane + i] = pixels[i * 3 + 2]! / 255;
      }
      const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', x, [1, 3, inH, inW]) };
      const t0 = performance.now();
      const res = await session.run(feeds);
      const modelMs = performance.now() - t0;
      const head = res[session.outputNames[0]!]!;
      const [, ch, n] = head.dims as [number, number, number];
      if (head.dims.length !== 3) throw new KestrelError('E_CHECKPOINT_FORMAT', `YOLO output must be [1, C, N], got [${head.dims.join(', ')}]`);
      const ncNow = ch - 4 - (segment ? YOLO_MASK_DIM : 0);
      if (nc === undefined) {
        nc = ncNow;
        det.labels = labelsFor(nc);
        det.categoryIds = idsFor(nc);
      }
      const data = head.data as Float32Array;
      const cands = decodeYolo(data, ch, n, ncNow, s);
      if (!segment || o.task !== 'segment') return { cands, modelMs };
      const proto = res[session.outputNames[1]!]!;
      const [, k, mh, mw] = proto.dims as [number, number, number, number];
      if (k !== YOLO_MASK_DIM) throw new KestrelError('E_CHECKPOINT_FORMAT', `YOLO-seg prototypes must be [1, 32, H/4, W/4], got [${proto.dims.join(', ')}]`);
      const protos = proto.data as Float32Array;
      const masks = cands.map((c) => {
        const coeffs = new Float32Array(k);
        for (let i = 0; i < k; i++) coeffs[i] = data[(4 + ncNow + i) * n + c.index]!;
        return yoloMask(coeffs, protos, mh, mw, c.box, inW, inH);
      });
      return { cands, modelMs, masks };
    },
    async dispose() { await session.release(); },
  };
  if (o.labels && nc !== undefined && o.labels.length !== nc) {
    throw new KestrelError('E_OPTIONS', `labels has ${o.labels.length} names but ${file} predicts ${nc} classes`);
  }
  return det;
}
