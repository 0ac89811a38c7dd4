import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';
import { MODEL_FLAGS, modelFlags } from './ask.js';

const HELP = `Usage: kestrel ground --model DIR|openai:URL --image IMG [options] "the red car"
       kestrel ground --model DIR --data COCO_DIR [--annotations F] --results RES.json [--limit N]

Visual grounding with a DeepSeek-VL2 checkpoint, in DeepSeek's own format: the prompt is
"<image>\\n<|ref|>QUERY<|/ref|>." and the answer's <|det|>[[x1, y1, x2, y2], ...]<|/det|> boxes
(0-999 of the frame) are mapped back to pixels of the original image. Prints one line per box,
"label  x y width height" (COCO [x, y, w, h]); with --json {"detections", "flags", "text", "usage"}.
A malformed or truncated answer gives no box and a flag (printed to stderr), never an error.

With --data: open-vocabulary detection over a COCO data set, one grounding query per category name
per image; writes COCO results JSON (score 1 for every box) that "kestrel eval coco" scores, and
prints the COCO summary (or the JSON report with --json).

  --model DIR|openai:URL  checkpoint directory (required; tokenizer.json with the grounding tokens), or
                          openai: + the base URL of a server serving DeepSeek-VL2 (single queries; --remote-model
                          as for "kestrel ask"; the server must honour skip_special_tokens: false)
  --image FILE            the image (single query)
  --caption               grounded captioning instead: "<image>\\n<|grounding|>QUERY" (e.g. "Describe the image.")
  --frame image|padded    what the 0-999 coordinates are a fraction of (default image, as DeepSeek's demo)
  --data DIR              COCO data set (images/ + annotations/instances_*.json)
  --annotations FILE      explicit instances JSON
  --results FILE          where to write the results JSON (atomically)
  --limit N               only the first N images
  --categories A,B        only these category names
  --max-new-tokens N      (default 128; 64 with --data); --backend, --dtype, --threads, --system as for "kestrel ask"`;

/** `kestrel ground`: DeepSeek-VL2 visual grounding, one query or a COCO data set. */
export const commands: CommandSpec[] = [
  {
    path: ['ground'],
    summary: 'find what a phrase describes in an image with a DeepSeek-VL2 model (COCO boxes; --data: open-vocabulary COCO detection)',
    help: HELP,
    options: {
      ...MODEL_FLAGS, image: { type: 'string' }, caption: { type: 'boolean' }, frame: { type: 'string' },
      data: { type: 'string' }, annotations: { type: 'string' }, results: { type: 'string' }, limit: { type: 'string' }, categories: { type: 'string' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const v = ctx.values;
      if (typeof v.model !== 'string') throw new KestrelError('E_OPTIONS', '--model DIR is required. Run "kestrel ground --help".');
      const flags = await modelFlags(v);
      if (v.frame !== undefined) flags.frame = v.frame;
      const { stat } = await import('node:fs/promises');
      if (typeof v.data === 'string') {
        const { benchGround } = await import('@kestrel/pipelines');
        const limit = v.limit === undefined ? undefined : Number(v.limit);
        if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new KestrelError('E_OPTIONS', `--limit must be a positive integer, got ${String(v.limit)}`);
        const { model: _m, systemPrompt: _s, temperature: _t, topP: _p, topK: _k, seed: _seed, device: _d, expertsOn: _e, cpuExpertLayers: _c, ...keep } = flags;
        const r = await benchGround({
          ...keep, model: v.model, data: v.data,
          ...(typeof v.annotations === 'string' ? { annotations: v.annotations } : {}),
          ...(typeof v.results === 'string' ? { results: v.results } : {}),
          ...(limit !== undefined ? { limit } : {}),
          ...(typeof v.categories === 'string' ? { categories: v.categories.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        } as Parameters<typeof benchGround>[0]);
        if (ctx.json) { printJson(ctx, r); return; }
        ctx.out.write(r.summary.endsWith('\n') ? r.summary : r.summary + '\n');
        ctx.err.write(`[${r.images} images x ${r.categories} categories = ${r.queries} queries, ${r.detections} boxes, ${(r.ms_per_query / 1000).toFixed(2)} s/query${Object.keys(r.flags).length ? `; flags ${JSON.stringify(r.flags)}` : ''}${r.results ? `; results ${r.results}` : ''}]\n`);
        return;
      }
      if (typeof v.image !== 'string') throw new KestrelError('E_OPTIONS', '--image FILE (one query) or --data COCO_DIR is required. Run "kestrel ground --help".');
      const query = ctx.positionals.join(' ').trim();
      if (!query) throw new KestrelError('E_OPTIONS', 'the query is missing: kestrel ground --model DIR --image a.jpg "the red car"');
      if (!(await stat(v.image).catch(() => null))?.isFile()) throw new KestrelError('E_IO', `cannot read image ${v.image}: no such file`);
      const { pipeline } = await import('@kestrel/pipelines');
      const ground = await pipeline('ground', { model: v.model, ...flags, ...(v.caption === true ? { mode: 'caption' } : {}) });
      try {
        const r = await ground(v.image, query);
        if (ctx.json) { printJson(ctx, r); return; }
        for (const d of r.detections) ctx.out.write(`${d.label}\t${d.bbox.map((x) => Math.round(x * 10) / 10).join(' ')}\n`);
        ctx.err.write(`[${r.detections.length} box(es)${r.flags.length ? `; flags: ${r.flags.join(', ')}` : ''}; answer: ${JSON.stringify(r.text)}]\n`);
      } finally {
        ground.dispose();
      }
    },
  },
];
