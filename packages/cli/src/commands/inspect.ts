import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

/** `kestrel inspect`: run a QC model (defects or xray) on images. */
export const commands: CommandSpec[] = [
  {
    path: ['inspect'],
    summary: 'inspect images with a QC model (defects-elpv, anomaly-magnetic-tile, xray-pneumonia or a model folder)',
    help: `Usage: kestrel inspect --model MODEL_DIR|NAME IMAGE... [--heatmap] [--json]

Runs the model on each image and prints its verdict, score and threshold. Shipped names:
defects-elpv, anomaly-magnetic-tile (defects pipeline) and xray-pneumonia (xray pipeline); a folder
made by "kestrel train" works too. The backbone is pulled from npm into the model store on first use.
--heatmap adds anomaly models' patch score maps to the JSON.`,
    options: { model: { type: 'string' }, heatmap: { type: 'boolean' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const model = typeof ctx.values.model === 'string' ? ctx.values.model : undefined;
      if (!model) throw new KestrelError('E_OPTIONS', '--model is required. Run "kestrel inspect --help".');
      if (ctx.positionals.length === 0) throw new KestrelError('E_OPTIONS', 'give at least one image. Run "kestrel inspect --help".');
      const { pipeline, qcModelTask } = await import('@kestrel/pipelines');
      const task = await qcModelTask(model);
      const rows: Array<Record<string, unknown>> = [];
      if (task === 'xray') {
        const run = await pipeline('xray', { model });
        for (const image of ctx.positionals) rows.push({ image, ...(await run(image)) });
      } else {
        const run = await pipeline('defects', { model, heatmap: ctx.values.heatmap === true });
        for (const image of ctx.positionals) {
          const r = await run(image);
          rows.push({ image, ...r, ...(r.heatmap ? { heatmap: { ...r.heatmap, data: Array.from(r.heatmap.data, (v) => Math.round(v * 1e4) / 1e4) } } : {}) });
        }
      }
      if (ctx.json) { printJson(ctx, ctx.positionals.length === 1 ? rows[0] : rows); return; }
      for (const r of rows) {
        if (task === 'xray') ctx.out.write(`${String(r.image)}: ${String(r.label)} (p=${(r.probability as number).toFixed(4)})\n`);
        else ctx.out.write(`${String(r.image)}: ${r.defective ? 'DEFECTIVE' : 'ok'} score ${(r.score as number).toPrecision(4)} threshold ${(r.threshold as number).toPrecision(4)}\n`);
      }
    },
  },
];
