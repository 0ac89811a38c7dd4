import { fileURLToPath } from 'node:url';
import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

const HELP = `Usage: kestrel bench eval [--runs N] [--scale F] [--in-process] [--json]

Generates a deterministic (seeded) COCO bbox case — 5,000 images, 36,000 GT boxes, 100,000
detections, 80 categories — in a temp dir and times "kestrel eval coco --iou-type bbox --json"
on it as a child process (whole process: Node start-up, JSON reading and parsing, evaluate,
accumulate, summarize). Reports the median of N runs and the in-process phase times.

  --runs N        timed runs (default 3)
  --scale F       scale the case size (e.g. 0.1 for a quick check; default 1)
  --in-process    time in this process instead of spawning the CLI
  --json          JSON on stdout`;

/** `kestrel bench eval`: COCO evaluation speed on the case. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'eval'],
    summary: 'time COCO bbox evaluation on a generated 5,000-image / 100,000-detection case',
    help: HELP,
    allowPositionals: false,
    options: { runs: { type: 'string' }, scale: { type: 'string' }, 'in-process': { type: 'boolean' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const { runCocoBench, COCO_BENCH_DEFAULT } = await import('@kestrel/eval');
      const runs = ctx.values.runs === undefined ? 3 : Number(ctx.values.runs);
      const scale = ctx.values.scale === undefined ? 1 : Number(ctx.values.scale);
      if (!Number.isInteger(runs) || runs < 1) throw new KestrelError('E_OPTIONS', '--runs must be a positive integer');
      if (!(scale > 0 && scale <= 10)) throw new KestrelError('E_OPTIONS', '--scale must be in (0, 10]');
      const d = COCO_BENCH_DEFAULT;
      const size = {
        images: Math.max(1, Math.round(d.images * scale)), gt: Math.max(1, Math.round(d.gt * scale)),
        detections: Math.max(1, Math.round(d.detections * scale)), categories: d.categories, seed: d.seed,
      };
      const cliPath = fileURLToPath(new URL('../../bin/kestrel.js', import.meta.url));
      const r = runCocoBench({ size, runs, ...(ctx.values['in-process'] === true ? {} : { cliPath }) });
      if (ctx.json) { printJson(ctx, r); return; }
      const f = (x: number): string => x.toFixed(3);
      ctx.out.write([
        `COCO bbox eval: ${size.images} images, ${size.gt} GT, ${size.detections} detections, ${size.categories} categories (seed ${size.seed})`,
        `  ${r.mode === 'spawned-cli' ? 'whole process (kestrel eval coco, spawned)' : 'in-process'}: ${f(r.seconds)} s median of ${r.runs.length} [${r.runs.map(f).join(', ')}]`,
        `  CPU time per run (user+sys${r.mode === 'spawned-cli' ? ', child process' : ''}): [${r.cpuSeconds.map((c) => (c === null ? '?' : f(c))).join(', ')}] s; load average ${r.loadAverage.map((x) => x.toFixed(1)).join(' -> ')} on ${r.cpus} CPUs`,
        `  phases (in-process): load ${f(r.phases.load)} s, index+loadRes ${f(r.phases.index)} s, evaluate ${f(r.phases.evaluate)} s, accumulate ${f(r.phases.accumulate)} s, summarize ${f(r.phases.summarize)} s`,
        `  AP ${r.stats[0]!.toFixed(4)}  AP50 ${r.stats[1]!.toFixed(4)}  AR100 ${r.stats[8]!.toFixed(4)}`,
        scale === 1
          ? `  vs pycocotools ~${r.referenceSeconds} s (figure quoted in the issue, 2 cores; not measured here): ${r.speedup.toFixed(1)}x`
          : `  (scaled case: the ~${r.referenceSeconds} s pycocotools figure is for the full case, so no ratio is printed)`,
        '',
      ].join('\n'));
    },
  },
];
