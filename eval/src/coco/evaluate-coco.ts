/** `evaluateCoco`: the one-call SDK entry (GT + results → stats, summary, per-category AP, arrays). */
import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import { COCO } from './coco.js';
import { COCOeval } from './cocoeval.js';
import type { CocoParams, IouType } from './params.js';
import { npMean, type NumpySumOrder } from './numeric.js';
import { checkNumpySum } from './summarize.js';
import type { GtDatasetInput, ResultInput } from './schema.js';

const num = z.number();

/** pycocotools `Params` fields a caller may override (same names). Unknown fields are rejected. */
export const cocoParamsSchema = z.strictObject({
  imgIds: z.array(num).optional(),
  catIds: z.array(num).optional(),
  useCats: z.union([z.number(), z.boolean()]).transform((v) => (v ? 1 : 0)).optional(),
  iouThrs: z.array(num).min(1).optional(),
  recThrs: z.array(num).min(1).optional(),
  maxDets: z.array(z.number().int().nonnegative()).min(1).optional(),
  areaRng: z.array(z.tuple([num, num])).min(1).optional(),
  areaRngLbl: z.array(z.string()).min(1).optional(),
  kpt_oks_sigmas: z.array(num).min(1).nullable().optional(),
  iouType: z.enum(['bbox', 'segm', 'keypoints']).optional(),
});

/** Parameter overrides accepted by {@link evaluateCoco} and `kestrel eval coco --params`. */
export type CocoParamsOverride = z.input<typeof cocoParamsSchema>;

/** Options of {@link evaluateCoco}. */
export interface EvaluateCocoOptions {
  /** GT: a `COCO` object or parsed instances JSON. */
  gt: COCO | GtDatasetInput | unknown;
  /** Results: a results list (`{image_id, category_id, score, bbox | segmentation | keypoints}`) or a COCO from `loadRes`. */
  results: COCO | ResultInput[] | unknown;
  iouType: IouType;
  /** pycocotools Params overrides (same field names). */
  params?: CocoParamsOverride;
  /** Also return the full precision / recall arrays (default false). */
  full?: boolean;
  /**
   * Which numpy's `np.mean` order to reproduce (it decides the last bit of means over more than 8,192
   * values): `'blocked'` (default) for pycocotools on numpy < 2.3, `'pairwise'` for numpy >= 2.3.
   */
  numpySum?: NumpySumOrder;
  /** Names used in error messages. */
  gtSource?: string;
  resultsSource?: string;
}

/** Per-category figures (area `all`, largest maxDets), -1 when the category has no GT. */
export interface CocoCategoryResult {
  category_id: number;
  name: string | null;
  /** AP @ IoU 0.50:0.95. */
  AP: number;
  AP50: number;
  AP75: number;
  /** AR @ IoU 0.50:0.95. */
  AR: number;
}

/** Result of {@link evaluateCoco}. */
export interface CocoEvalResult {
  iouType: IouType;
  /** 12 numbers (bbox/segm) or 10 (keypoints), as `COCOeval.stats`. */
  stats: number[];
  /** The summary as pycocotools prints it (one line per stat, newline-terminated). */
  summary: string;
  /** Per-category AP / AR (empty with useCats = 0). */
  per_category: CocoCategoryResult[];
  /** Parameters as pycocotools leaves them after `accumulate()` (ids sorted and de-duplicated). */
  params: Omit<CocoParams, 'iouType'>;
  /** `[T][R][K][A][M]`, only with `full`. */
  precision?: number[][][][][];
  /** `[T][K][A][M]`, only with `full`. */
  recall?: number[][][][];
}

/**
 * Evaluate detections, masks or keypoints against COCO GT with pycocotools' semantics.
 * Bad GT / results throw `E_COCO_FORMAT` naming the JSON path; bad params throw `E_OPTIONS`.
 */
export function evaluateCoco(opts: EvaluateCocoOptions): CocoEvalResult {
  const override = checkRequest(opts.iouType, opts.params);
  const order = checkNumpySum(opts.numpySum);
  const gt = opts.gt instanceof COCO ? opts.gt : new COCO(opts.gt, opts.gtSource ?? 'gt');
  const dt = opts.results instanceof COCO ? opts.results : gt.loadRes(opts.results, opts.resultsSource ?? 'results');
  const E = new COCOeval(gt, dt, opts.iouType);
  applyParams(E.params, override);
  E.evaluate();
  E.accumulate();
  return finishEval(E, gt, opts.full === true, order);
}

/** Validate the IoU type and parameter overrides (E_OPTIONS). */
export function checkRequest(iouType: IouType, params: unknown): z.output<typeof cocoParamsSchema> {
  if (iouType !== 'bbox' && iouType !== 'segm' && iouType !== 'keypoints') {
    throw new KestrelError('E_OPTIONS', `iouType must be bbox, segm or keypoints (got ${String(iouType)})`);
  }
  const override = parseOptions(cocoParamsSchema, params ?? {}, 'COCO params');
  if (override.iouType !== undefined && override.iouType !== iouType) {
    throw new KestrelError('E_OPTIONS', `params.iouType is ${override.iouType} but the evaluation is ${iouType}`);
  }
  return override;
}

/** Summarize an accumulated COCOeval into the result object. */
export function finishEval(E: COCOeval, gt: COCO, full: boolean, order: NumpySumOrder = 'blocked'): CocoEvalResult {
  // After accumulate, as pycocotools leaves them (useCats=0 turns catIds into [-1]).
  const params = structuredClone(E.params);
  const stats = E.summarize(order);
  const out: CocoEvalResult = {
    iouType: E.params.iouType,
    stats,
    summary: E.summaryLines.join('\n') + '\n',
    per_category: perCategory(E, gt, params, order),
    params: stripType(params),
  };
  if (full) {
    out.precision = E.precisionNested();
    out.recall = E.recallNested();
  }
  return out;
}

/** Assign overrides onto Params as pycocotools users do (`E.params.x = ...`). */
export function applyParams(p: CocoParams, o: z.output<typeof cocoParamsSchema>): void {
  if (o.imgIds !== undefined) p.imgIds = o.imgIds;
  if (o.catIds !== undefined) p.catIds = o.catIds;
  if (o.useCats !== undefined) p.useCats = o.useCats;
  if (o.iouThrs !== undefined) p.iouThrs = o.iouThrs;
  if (o.recThrs !== undefined) p.recThrs = o.recThrs;
  if (o.maxDets !== undefined) p.maxDets = o.maxDets;
  if (o.areaRng !== undefined) p.areaRng = o.areaRng;
  if (o.areaRngLbl !== undefined) p.areaRngLbl = o.areaRngLbl;
  if (o.kpt_oks_sigmas !== undefined) p.kpt_oks_sigmas = o.kpt_oks_sigmas;
}

function stripType(p: CocoParams): Omit<CocoParams, 'iouType'> {
  const { iouType: _t, ...rest } = p;
  return rest;
}

function perCategory(E: COCOeval, gt: COCO, p: CocoParams, order: NumpySumOrder): CocoCategoryResult[] {
  const ev = E.eval;
  if (!ev || !p.useCats) return [];
  const [T, R, K, A, M] = ev.counts;
  let a = p.areaRngLbl.indexOf('all');
  if (a < 0) a = 0;
  const m = M - 1;
  const mean = (vals: number[]): number => (vals.length ? npMean(vals, order) : -1);
  const ts = (thr: number | null): number[] => {
    const out: number[] = [];
    p.iouThrs.forEach((v, t) => { if (thr === null || v === thr) out.push(t); });
    return out;
  };
  const ap = (k: number, thr: number | null): number => {
    const vals: number[] = [];
    for (const t of ts(thr)) for (let r = 0; r < R; r++) {
      const v = ev.precision[(((t * R + r) * K + k) * A + a) * M + m]!;
      if (v > -1) vals.push(v);
    }
    return mean(vals);
  };
  const ar = (k: number): number => {
    const vals: number[] = [];
    for (let t = 0; t < T; t++) { const v = ev.recall[((t * K + k) * A + a) * M + m]!; if (v > -1) vals.push(v); }
    return mean(vals);
  };
  return p.catIds.map((id, k) => ({
    category_id: id,
    name: gt.cats.get(id)?.name ?? null,
    AP: ap(k, null),
    AP50: ap(k, 0.5),
    AP75: ap(k, 0.75),
    AR: ar(k),
  }));
}
