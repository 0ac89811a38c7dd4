import { z } from 'zod';
import { parseOptions } from '@kestrel/core';
import type { Detection } from '@kestrel/pipelines';
import type { Defect, Inspector, InspectionResult } from './inspector.js';

/**
 * When a detector's output makes a part NG: at least `minCount` detections of the `ngLabels` classes
 * scoring `minScore` or more (inside `roi`, when given).
 */
export const DetectRulesSchema = z.object({
  /** Class labels (`'scratch'`) or category ids whose detections count as defects. */
  ngLabels: z.array(z.union([z.string().min(1), z.number().int()])).min(1),
  minScore: z.number().min(0).max(1).default(0.5),
  minCount: z.number().int().positive().default(1),
  /** Region of interest [x, y, w, h] in image pixels: detections whose centre is outside are ignored. */
  roi: z.tuple([z.number(), z.number(), z.number().positive(), z.number().positive()]).optional(),
}).strict();
export type DetectRules = z.input<typeof DetectRulesSchema>;

/** Apply rules to one image's detections. Exported for tests. */
export function applyDetectRules(dets: readonly Detection[], rules: DetectRules): InspectionResult {
  const r = parseOptions(DetectRulesSchema, rules, 'detect rules');
  const relevant = dets.filter((d) => r.ngLabels.includes(d.label) || r.ngLabels.includes(d.categoryId)).filter((d) => {
    if (!r.roi) return true;
    const cx = d.bbox[0] + d.bbox[2] / 2, cy = d.bbox[1] + d.bbox[3] / 2;
    return cx >= r.roi[0] && cy >= r.roi[1] && cx < r.roi[0] + r.roi[2] && cy < r.roi[1] + r.roi[3];
  });
  const counting = relevant.filter((d) => d.score >= r.minScore).sort((a, b) => b.score - a.score);
  const score = relevant.reduce((m, d) => Math.max(m, d.score), 0);
  const defects: Defect[] = counting.map((d) => ({ label: d.label, score: d.score, box: d.bbox }));
  return { verdict: counting.length >= r.minCount ? 'NG' : 'OK', score, threshold: r.minScore, defects };
}

/**
 * An {@link Inspector} over Kestrel's `detect` pipeline plus {@link DetectRules}: for detectors trained
 * on defect classes (an exported YOLO ONNX model with `labels`), or counting/presence checks with the
 * COCO models. The score is the best score among the NG classes; the threshold is `minScore`.
 */
export async function createDetectInspector(options: { model: string; rules: DetectRules; labels?: string[]; workers?: number }): Promise<Inspector> {
  const rules = parseOptions(DetectRulesSchema, options.rules, 'detect rules');
  const { pipeline } = await import('@kestrel/pipelines');
  const run = await pipeline('detect', {
    model: options.model, scoreThreshold: Math.min(0.05, rules.minScore), ...(options.labels ? { labels: options.labels } : {}), ...(options.workers !== undefined ? { workers: options.workers } : {}),
  });
  const name = run.model.name;
  const { createHash } = await import('node:crypto');
  const { existsSync } = await import('node:fs');
  const { sha256File } = await import('./inspector.js');
  const file = run.model.file;
  const weights = file && existsSync(file) ? (await sha256File(file)).slice(0, 12) : 'unknown';
  const rulesHash = createHash('sha256').update(JSON.stringify(rules)).digest('hex').slice(0, 8);
  return {
    // The rules are part of what decides the verdict, so they are part of the logged version.
    model: { name: `${name}+rules`, version: `sha256:${weights}+rules:${rulesHash}` },
    async inspect(image: Buffer): Promise<InspectionResult> {
      const [dets] = await run(image);
      return applyDetectRules(dets ?? [], rules);
    },
    close: async () => { await run.dispose?.(); },
  };
}
