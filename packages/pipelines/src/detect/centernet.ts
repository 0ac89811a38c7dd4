import { KestrelError } from '@kestrel/core';
import { loadTfjsGraphModel, tf, type TfjsBackend } from '../runtime/tfjs.js';
import { COCO80_LABELS, COCO80_TO_91 } from './coco-classes.js';
import type { Candidate } from './geometry.js';
import type { DecodeSettings, Detector } from './detector.js';

/** CenterNet's input side (square). */
export const CENTERNET_SIZE = 512;

/**
 * Decode CenterNet's `tower_0/detections` output: `n` rows of [x1, y1, x2, y2, score, class] in input
 * pixels, already the model's top 100 peaks (the heat-map max-pool acts as NMS), so no NMS here.
 */
export function decodeCenterNet(out: Float32Array, s: DecodeSettings): Candidate[] {
  const n = Math.floor(out.length / 6);
  const cands: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * 6;
    const score = out[o + 4]!;
    const cls = Math.round(out[o + 5]!);
    if (!(score >= s.scoreThreshold) || cls < 0 || cls >= 80) continue;
    if (s.classes && !s.classes.has(cls)) continue;
    cands.push({ box: [out[o]!, out[o + 1]!, out[o + 2]!, out[o + 3]!], score, cls, index: i });
  }
  cands.sort((a, b) => b.score - a.score);
  return cands.slice(0, s.maxDetections);
}

/** Load CenterNet (tfjs graph model) on a tfjs backend. */
export async function createCenterNet(file: string, backend: TfjsBackend): Promise<Detector> {
  const { model, backend: used } = await loadTfjsGraphModel(file, backend);
  const input = model.inputs[0];
  if (!input || input.shape?.[1] !== CENTERNET_SIZE || input.shape?.[3] !== 3 || !model.outputNodes.includes('tower_0/detections')) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${file} does not look like CenterNet (expected input [1,512,512,3] and output tower_0/detections)`);
  }
  const t = tf();
  return {
    kind: 'centernet', inputWidth: CENTERNET_SIZE, inputHeight: CENTERNET_SIZE, padValue: 0,
    labels: COCO80_LABELS, categoryIds: COCO80_TO_91, defaultIou: 1, runtime: `tfjs-${used}`,
    async run(pixels: Uint8Array, s: DecodeSettings) {
      // The graph divides by 255 itself: feed 0..255 floats.
      const x = t.tensor4d(Float32Array.from(pixels), [1, CENTERNET_SIZE, CENTERNET_SIZE, 3]);
      const t0 = performance.now();
      const y = model.execute(x, 'tower_0/detections') as ReturnType<typeof t.tensor>;
      const data = (await y.data()) as Float32Array;
      const modelMs = performance.now() - t0;
      x.dispose();
      y.dispose();
      return { cands: decodeCenterNet(data, s), modelMs };
    },
    async dispose() { model.dispose(); },
  };
}
