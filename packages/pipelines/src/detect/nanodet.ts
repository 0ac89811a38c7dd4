import { KestrelError } from '@kestrel/core';
import { loadTfjsGraphModel, tf, type TfjsBackend } from '../runtime/tfjs.js';
import { COCO80_LABELS, COCO80_TO_91 } from './coco-classes.js';
import { nms, type Candidate } from './geometry.js';
import type { DecodeSettings, Detector } from './detector.js';

/** NanoDet-g's input side (square, channels first). */
export const NANODET_SIZE = 416;
/** Per-channel mean and std of NanoDet's training normalisation, in B, G, R order. */
export const NANODET_MEAN_BGR = [103.53, 116.28, 123.675] as const;
export const NANODET_STD_BGR = [57.375, 57.12, 58.395] as const;
/** Distance bins per box side (GFL distribution, reg_max = 10). */
export const NANODET_BINS = 11;
/** Candidates kept before NMS (NanoDet's own test-time `nms_pre`). */
const PRE_NMS = 1000;

/** RGB HWC bytes -> BGR CHW floats normalised with NanoDet's mean/std. */
export function nanodetInput(rgb: Uint8Array, size = NANODET_SIZE): Float32Array {
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    const p = i * 3;
    out[i] = (rgb[p + 2]! - NANODET_MEAN_BGR[0]) / NANODET_STD_BGR[0];
    out[plane + i] = (rgb[p + 1]! - NANODET_MEAN_BGR[1]) / NANODET_STD_BGR[1];
    out[2 * plane + i] = (rgb[p]! - NANODET_MEAN_BGR[2]) / NANODET_STD_BGR[2];
  }
  return out;
}

/** One feature level of NanoDet's output: sigmoid scores [n, nc] and distance logits [n, 4 * bins]. */
export interface NanoDetLevel {
  stride: number;
  /** Grid width (= height) of this level. */
  grid: number;
  scores: Float32Array;
  dists: Float32Array;
}

/** Expected value of a softmax over `bins` logits starting at `o`: the distance in stride units. */
function expectedDistance(d: Float32Array, o: number, bins: number): number {
  let m = -Infinity;
  for (let k = 0; k < bins; k++) m = Math.max(m, d[o + k]!);
  let sum = 0;
  let acc = 0;
  for (let k = 0; k < bins; k++) {
    const e = Math.exp(d[o + k]! - m);
    sum += e;
    acc += e * k;
  }
  return acc / sum;
}

/**
 * Decode NanoDet's GFL head: each grid cell's centre ((col + 0.5) * stride, (row + 0.5) * stride)
 * minus/plus the expected left/top/right/bottom distances times the stride gives the box; then
 * per-class NMS.
 */
export function decodeNanoDet(levels: NanoDetLevel[], nc: number, s: DecodeSettings, bins = NANODET_BINS): Candidate[] {
  const thr = s.scoreThreshold;
  const allowed = new Uint8Array(nc).fill(1);
  if (s.classes) for (let c = 0; c < nc; c++) allowed[c] = s.classes.has(c) ? 1 : 0;
  // Pass 1: histogram of the (sigmoid, 0..1) scores over the threshold, to find the score above which
  // the best PRE_NMS lie (NanoDet's own nms_pre) without sorting hundreds of thousands of pairs.
  const B = 4096;
  const hist = new Uint32Array(B + 1);
  for (const L of levels) {
    const sc = L.scores;
    for (let j = 0; j < sc.length; j++) {
      const v = sc[j]!;
      if (v >= thr && allowed[j % nc]) hist[Math.min(B, Math.max(0, Math.floor(v * B)))]!++;
    }
  }
  let cut = thr;
  for (let b = B, acc = 0; b >= 0; b--) {
    acc += hist[b]!;
    if (acc >= PRE_NMS) { cut = Math.max(thr, b / B); break; }
  }
  // Pass 2: boxes for the survivors only.
  const pre: Candidate[] = [];
  for (const L of levels) {
    const sc = L.scores;
    for (let j = 0; j < sc.length; j++) {
      const score = sc[j]!;
      const c = j % nc;
      if (!(score >= cut) || !allowed[c]) continue;
      const i = (j - c) / nc;
      const cx = ((i % L.grid) + 0.5) * L.stride;
      const cy = (Math.floor(i / L.grid) + 0.5) * L.stride;
      const o = i * 4 * bins;
      pre.push({
        box: [
          cx - expectedDistance(L.dists, o, bins) * L.stride,
          cy - expectedDistance(L.dists, o + bins, bins) * L.stride,
          cx + expectedDistance(L.dists, o + 2 * bins, bins) * L.stride,
          cy + expectedDistance(L.dists, o + 3 * bins, bins) * L.stride,
        ],
        score, cls: c, index: i,
      });
    }
  }
  pre.sort((a, b) => b.score - a.score);
  return nms(pre.slice(0, PRE_NMS), s.iou, s.maxDetections, true);
}

/** Load NanoDet-g (tfjs graph model) on a tfjs backend. */
export async function createNanoDet(file: string, backend: TfjsBackend): Promise<Detector> {
  const { model, backend: used } = await loadTfjsGraphModel(file, backend);
  const input = model.inputs[0];
  if (!input || input.shape?.[1] !== 3 || input.shape?.[2] !== NANODET_SIZE || model.outputs.length !== 6) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${file} does not look like NanoDet-g (expected input [1,3,416,416] and 6 outputs)`);
  }
  const t = tf();
  const nc = 80;
  return {
    kind: 'nanodet', inputWidth: NANODET_SIZE, inputHeight: NANODET_SIZE, padValue: 0,
    labels: COCO80_LABELS, categoryIds: COCO80_TO_91, defaultIou: 0.6, runtime: `tfjs-${used}`,
    async run(pixels: Uint8Array, s: DecodeSettings) {
      const x = t.tensor4d(nanodetInput(pixels), [1, 3, NANODET_SIZE, NANODET_SIZE]);
      const t0 = performance.now();
      const ys = model.execute(x) as Array<ReturnType<typeof t.tensor>>;
      const datas = await Promise.all(ys.map((y) => y.data() as Promise<Float32Array>));
      const modelMs = performance.now() - t0;
      // Outputs come in no particular stride order: pair them up by shape [1, cells, nc | 44].
      const byCells = new Map<number, Partial<NanoDetLevel>>();
      ys.forEach((y, k) => {
        const [, cells, width] = y.shape as [number, number, number];
        const L = byCells.get(cells) ?? {};
        if (width === nc) L.scores = datas[k];
        else if (width === 4 * NANODET_BINS) L.dists = datas[k];
        byCells.set(cells, L);
      });
      x.dispose();
      for (const y of ys) y.dispose();
      const levels: NanoDetLevel[] = [];
      for (const [cells, L] of byCells) {
        const grid = Math.round(Math.sqrt(cells));
        if (!L.scores || !L.dists || grid * grid !== cells) throw new KestrelError('E_CHECKPOINT_FORMAT', 'unexpected NanoDet output shapes');
        levels.push({ stride: NANODET_SIZE / grid, grid, scores: L.scores, dists: L.dists });
      }
      return { cands: decodeNanoDet(levels, nc, s), modelMs };
    },
    async dispose() { model.dispose(); },
  };
}
