/** COCOeval parameters with pycocotools' defaults and names. */

/** The three evaluation types of pycocotools. */
export type IouType = 'bbox' | 'segm' | 'keypoints';

/** pycocotools `Params`, same field names. */
export interface CocoParams {
  imgIds: number[];
  catIds: number[];
  /** 1 = per category (default), 0 = ignore labels. */
  useCats: number;
  iouThrs: number[];
  recThrs: number[];
  maxDets: number[];
  areaRng: [number, number][];
  areaRngLbl: string[];
  /** Per-keypoint OKS sigmas; null for bbox / segm. */
  kpt_oks_sigmas: number[] | null;
  iouType: IouType;
}

/**
 * `np.linspace(start, stop, num)` bit for bit: `i*step + start`, the last point set to `stop`. It is
 * not `start + i*(stop-start)/(num-1)` in every bit, and thresholds are compared with `==` later.
 */
export function linspace(start: number, stop: number, num: number): number[] {
  const out: number[] = [];
  const div = num - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) out.push(div > 0 ? i * step + start : start);
  if (num > 1) out[num - 1] = stop;
  return out;
}

const KPT_SIGMAS = [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89];

/** Default parameters for an IoU type, as `Params(iouType)` sets them (ids are filled from the GT). */
export function defaultParams(iouType: IouType): CocoParams {
  const iouThrs = linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1);
  const recThrs = linspace(0.0, 1.0, Math.round((1.0 - 0.0) / 0.01) + 1);
  if (iouType === 'keypoints') {
    return {
      imgIds: [], catIds: [], useCats: 1, iouThrs, recThrs, maxDets: [20],
      areaRng: [[0 ** 2, 1e5 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]],
      areaRngLbl: ['all', 'medium', 'large'],
      // np.array([...]) / 10.0, elementwise.
      kpt_oks_sigmas: KPT_SIGMAS.map((s) => s / 10.0),
      iouType,
    };
  }
  return {
    imgIds: [], catIds: [], useCats: 1, iouThrs, recThrs, maxDets: [1, 10, 100],
    areaRng: [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]],
    areaRngLbl: ['all', 'small', 'medium', 'large'],
    kpt_oks_sigmas: null,
    iouType,
  };
}

/** `np.unique` on numbers: sorted ascending, de-duplicated. */
export function npUnique(a: readonly number[]): number[] {
  const s = Array.from(new Set(a)).sort((x, y) => x - y);
  return s;
}
