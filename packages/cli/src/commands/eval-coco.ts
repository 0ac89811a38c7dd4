import type { CommandSpec } from '../command.js';
import type { NumpySumOrder } from '@kestrel/eval';

const HELP = `Usage: kestrel eval coco --gt GT.json --results RES.json --iou-type bbox|segm|keypoints
                         [--params PARAMS.json] [--numpy-sum blocked|pairwise] [--full] [--json]

Evaluates COCO detection, segmentation or keypoint results with the semantics of pycocotools'
COCOeval (same stats to the last digit: stable tie order, crowd regions, -1 for categories
without GT).

  --gt FILE         COCO instances / person_keypoints GT (images, annotations, categories)
  --results FILE    COCO results: [{"image_id", "category_id", "score", "bbox" | "segmentation" | "keypoints"}]
  --iou-type TYPE   bbox, segm or keypoints
  --params FILE     JSON object overriding pycocotools Params fields by name: imgIds, catIds,
                    useCats, iouThrs, recThrs, maxDets, areaRng, areaRngLbl, kpt_oks_sigmas
  --numpy-sum ORDER how means are summed, as numpy does it: blocked (default; numpy < 2.3, what
                    pycocotools ran on so far) or pairwise (numpy >= 2.3). Only means over more
                    than 8,192 values can differ, in the last bit.
  --full            with --json: also "precision" [T][R][K][A][M] and "recall" [T][K][A][M]
  --json            JSON on stdout: stats, summary, per_category, params (+ precision, recall)

Without --json the 12-line (10 for keypoints) pycocotools summary is printed.
Bad input exits with E_COCO_FORMAT naming the file and the JSON path of the bad field.`;

/** `kestrel eval coco`: pycocotools-compatible COCOeval. */
export const commands: CommandSpec[] = [
  {
    path: ['eval', 'coco'],
    summary: 'COCO AP/AR for bbox, segm or keypoint results (pycocotools numbers, faster)',
    help: HELP,
    allowPositionals: false,
    options: {
      gt: { type: 'string' },
      results: { type: 'string' },
      'iou-type': { type: 'string' },
      params: { type: 'string' },
      'numpy-sum': { type: 'string' },
      full: { type: 'boolean' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const { evaluateCoco, readJsonFile } = await import('@kestrel/eval');
      const gtPath = ctx.values.gt, resPath = ctx.values.results, iouType = ctx.values['iou-type'];
      if (typeof gtPath !== 'string' || typeof resPath !== 'string' || typeof iouType !== 'string') {
        throw new KestrelError('E_OPTIONS', '--gt, --results and --iou-type are required. Run "kestrel eval coco --help".');
      }
      if (iouType !== 'bbox' && iouType !== 'segm' && iouType !== 'keypoints') {
        throw new KestrelError('E_OPTIONS', `--iou-type must be bbox, segm or keypoints (got "${iouType}")`);
      }
      let params: unknown;
      if (typeof ctx.values.params === 'string') {
        const p = readJsonFile(ctx.values.params);
        if (p === null || typeof p !== 'object' || Array.isArray(p)) {
          throw new KestrelError('E_OPTIONS', `${ctx.values.params}: params must be a JSON object of pycocotools Params fields`);
        }
        params = p;
      }
      const gt = readJsonFile(gtPath);
      const results = readJsonFile(resPath);
      const full = ctx.values.full === true;
      const r = evaluateCoco({
        gt, results, iouType, params: params as Record<string, never> | undefined, full: full && ctx.json,
        gtSource: gtPath, resultsSource: resPath,
        // evaluateCoco refuses any other value with E_OPTIONS naming the two accepted ones.
        ...(ctx.values['numpy-sum'] !== undefined ? { numpySum: ctx.values['numpy-sum'] as NumpySumOrder } : {}),
      });
      if (ctx.json) {
        // Compact JSON: with --full the arrays hold ~10^6 numbers.
        ctx.out.write(JSON.stringify({
          iouType: r.iouType, stats: r.stats,
          ...(r.precision ? { precision: r.precision, recall: r.recall } : {}),
          per_category: r.per_category, summary: r.summary, params: r.params,
        }) + '\n');
        return;
      }
      ctx.out.write(r.summary);
    },
  },
];
