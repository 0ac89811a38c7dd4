import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

/** Names of the 12 COCOeval summary numbers, in order. */
export const COCO_STAT_NAMES = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] as const;

/** `kestrel bench coco`: run a detector over a COCO-format set and score it. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'coco'],
    summary: 'run a detector over a COCO-format data set, write results JSON, score with COCOeval',
    help: `Usage: kestrel bench coco --model centernet|nanodet|FILE.onnx|DIR --data DIR [--results out.json]
       [--annotations FILE] [--backend wasm|cpu] [--provider cpu|cuda] [--limit N] [--segm] [--score 0.001] [--json]

DIR holds images/ and annotations/instances_*.json. Runs the pipeline on every image (or the first N),
writes the COCO results JSON (atomically) and prints COCOeval's 12 numbers, images and ms per image.
--segm scores masks (YOLO-seg ONNX models). Prints { stats, images, msPerImage, ... } with --json (ms_per_image etc. kept as aliases for one release).`,
    allowPositionals: false,
    options: {
      model: { type: 'string', short: 'm' }, data: { type: 'string' }, results: { type: 'string' }, annotations: { type: 'string' },
      backend: { type: 'string' }, provider: { type: 'string' }, limit: { type: 'string' }, segm: { type: 'boolean' }, score: { type: 'string' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const v = ctx.values;
      if (typeof v.model !== 'string') throw new KestrelError('E_OPTIONS', '--model is required (centernet, nanodet, or an .onnx file). Run "kestrel bench coco --help".');
      if (typeof v.data !== 'string') throw new KestrelError('E_OPTIONS', '--data DIR is required (COCO layout: images/ + annotations/instances_*.json).');
      const int = (x: unknown, name: string): number | undefined => {
        if (typeof x !== 'string') return undefined;
        const n = Number(x);
        if (!Number.isFinite(n)) throw new KestrelError('E_OPTIONS', `--${name} must be a number, got "${x}"`);
        return n;
      };
      const { benchCoco } = await import('@kestrel/pipelines');
      const r = await benchCoco({
        model: v.model, data: v.data,
        ...(typeof v.results === 'string' ? { results: v.results } : {}),
        ...(typeof v.annotations === 'string' ? { annotations: v.annotations } : {}),
        ...(typeof v.backend === 'string' ? { backend: v.backend as 'wasm' } : {}),
        ...(typeof v.provider === 'string' ? { executionProvider: v.provider as 'cpu' } : {}),
        ...(int(v.limit, 'limit') !== undefined ? { limit: int(v.limit, 'limit') } : {}),
        ...(int(v.score, 'score') !== undefined ? { scoreThreshold: int(v.score, 'score') } : {}),
        ...(v.segm === true ? { iouType: 'segm' as const } : {}),
      });
      if (ctx.json) { printJson(ctx, r); return; }
      ctx.out.write(r.summary);
      ctx.out.write(`${COCO_STAT_NAMES.map((n, i) => `${n} ${r.stats[i]!.toFixed(3)}`).join('  ')}\n`);
      ctx.out.write(`model ${r.model} (${r.runtime}), ${r.images} images, ${r.detections} detections, ${r.msPerImage.toFixed(1)} ms/image (pre ${r.preMs.toFixed(1)}, model ${r.modelMs.toFixed(1)}, post ${r.postMs.toFixed(1)})\n`);
      if (r.results) ctx.out.write(`results -> ${r.results}\n`);
    },
  },
];
