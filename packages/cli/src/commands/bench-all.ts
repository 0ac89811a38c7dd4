import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CommandSpec } from '../command.js';

const HELP = `Usage: kestrel bench all [--lm-model DIR] [--quick]

What "npm run bench" runs: every benchmark that needs no download, one after the other, each printing
its figures and the reference it is compared against (measured side by side in the same run where a
reference runs here):

  1. kestrel bench eval     COCO bbox evaluation, 5,000 images / 100,000 detections
  2. native/bench/kernels   native kernel throughput on the anchor model's shapes (GB/s, GOP/s)
  3. vit-bench              ViT encode, portable TypeScript vs native kernels, side by side
     kestrel bench xray / bench defects   the shipped QC models on their report splits
  4. kestrel bench lm       MoE LM prefill/decode tok/s (only with --lm-model DIR, or when the
                            perf-anchor checkpoint exists at /tmp/perf/models/ds2moe-anchor-q8-kestrel)
  5. kestrel bench responsiveness   worst 10 ms timer lateness during generate (the step 4 model, or
                            /tmp/perf/models/ds2moe-anchor-hf), ask and inspect: worker vs in-process

  --lm-model DIR  MoE checkpoint for step 4
  --quick         smaller eval case (scale 0.2) and one run each, for a smoke check`;

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const cli = fileURLToPath(new URL('../../bin/kestrel.js', import.meta.url));

function step(title: string, args: string[], err: NodeJS.WritableStream): boolean {
  err.write(`\n=== ${title}\n$ node ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) err.write(`(${title} exited with ${r.status ?? r.signal})\n`);
  return r.status === 0;
}

/** `kestrel bench all`: the benchmarks behind `npm run bench`. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'all'],
    summary: 'run every local benchmark (eval, kernels, ViT, and the LM when a checkpoint is given)',
    help: HELP,
    allowPositionals: false,
    options: { 'lm-model': { type: 'string' }, quick: { type: 'boolean' } },
    async run(ctx) {
      const quick = ctx.values.quick === true;
      const results: Record<string, boolean> = {};
      results.eval = step('COCO eval speed', [cli, 'bench', 'eval', '--runs', quick ? '1' : '3', ...(quick ? ['--scale', '0.2'] : [])], ctx.out);
      const kernels = 'native/bench/kernels.mjs';
      if (existsSync(root + kernels)) results.kernels = step('native kernels', [kernels, '--pretty'], ctx.out);
      const vit = 'packages/vit/bench/vit-bench.mjs';
      if (existsSync(root + vit)) results.vit = step('ViT encode, portable vs native', [vit], ctx.out);
      // Accuracy of the shipped QC models on the splits their model cards report (not used for training).
      results.xray = step('X-ray model (PneumoniaMNIST val)', [cli, 'bench', 'xray', '--model', 'xray-pneumonia', '--data', 'datasets/pneumoniamnist', '--split', 'val'], ctx.out);
      if (!quick) {
        results.defects = step('ELPV defects model (holdout)', [cli, 'bench', 'defects', '--model', 'defects-elpv', '--data', 'datasets/elpv', '--files', 'models/defects-elpv/holdout.txt'], ctx.out);
      }
      const anchor = '/tmp/perf/models/ds2moe-anchor-q8-kestrel';
      const lm = typeof ctx.values['lm-model'] === 'string' ? ctx.values['lm-model'] : existsSync(anchor) ? anchor : undefined;
      if (lm) {
        results.lm = step('MoE LM speed', [cli, 'bench', 'lm', '--model', lm, '--threads', '2', '--dtype', 'int8'], ctx.out);
      } else {
        ctx.out.write('\n=== MoE LM speed: skipped (no --lm-model and no perf-anchor checkpoint; see docs/native.md for the llama.cpp side-by-side script)\n');
      }
      // how long generate / ask / inspect hold the caller's event loop, worker vs in-process (issue 13)
      results.responsiveness = step('event-loop responsiveness (worker vs in-process)', [cli, 'bench', 'responsiveness', ...(lm ? ['--lm-model', lm] : [])], ctx.out);
      const failed = Object.entries(results).filter(([, ok]) => !ok).map(([k]) => k);
      ctx.out.write(`\nbench all: ${Object.keys(results).length - failed.length} ran, ${failed.length} failed${failed.length ? ` (${failed.join(', ')})` : ''}\n`);
      return failed.length ? 1 : 0;
    },
  },
];
