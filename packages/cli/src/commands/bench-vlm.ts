import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';
import { phaseTimings } from './ask.js';

const HELP = `Usage: kestrel bench vlm (--preset NAME | --model DIR) [options]

Real-size VLM benchmark. --preset writes (once, into $KESTREL_HOME/presets or ~/.cache/kestrel/presets, never
into the repository) a random-weight checkpoint with the published config, tensor names, shapes and dtypes of
the model (BF16, sharded, model.safetensors.index.json, a stand-in byte-level tokenizer), then loads it and runs
\`ask\` once on a bundled COCO photo (datasets/coco-val2017-128/images/000000001000.jpg, 640x480).

  --preset NAME          deepseek-vl2-tiny (3.37 B parameters, 6.7 GB) | deepseek-vl2-small (16.1 B, 32 GB)
  --model DIR            any DeepSeek-VL2 checkpoint instead of a preset
  --dtype NAME           f32 | bf16 | int8 (default: the checkpoint's own, BF16 for the presets)
  --threads N            kernel threads (default: one per core)
  --image FILE           another image
  --max-new-tokens N     tokens to generate (default 32; EOS can stop earlier)
  --json                 print one JSON object

Prints load_s, peak_rss_mb (process high-water mark), tiles, image_tokens, vit_ms_per_tile, first_token_s,
prefill_tok_s, decode_tok_s and the rest of the phases (as \`kestrel ask --timings\`).`;

const here = dirname(fileURLToPath(import.meta.url));
/** The bundled photo: packages/cli/{src,dist}/commands -> repository root. */
export const BENCH_IMAGE = resolve(here, '..', '..', '..', '..', 'datasets', 'coco-val2017-128', 'images', '000000001000.jpg');

/** `kestrel bench vlm`: load and one answer of a real-size DeepSeek-VL2 checkpoint, phase by phase. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'vlm'],
    summary: 'real-size VLM benchmark: writes a random-weight published-shape checkpoint once, then times load, ViT, prefill, decode',
    help: HELP,
    allowPositionals: false,
    options: {
      preset: { type: 'string' }, model: { type: 'string' }, dtype: { type: 'string' }, threads: { type: 'string' },
      image: { type: 'string' }, 'max-new-tokens': { type: 'string' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const int = (name: string, def: number | undefined): number | undefined => {
        const v = ctx.values[name];
        if (v === undefined) return def;
        const n = Number(v);
        if (typeof v !== 'string' || !Number.isInteger(n) || n < 1) throw new KestrelError('E_OPTIONS', `--${name} must be a positive integer, got ${String(v)}`);
        return n;
      };
      const dtype = ctx.values.dtype;
      if (dtype !== undefined && !['f32', 'bf16', 'int8'].includes(String(dtype))) throw new KestrelError('E_OPTIONS', `--dtype must be f32, bf16 or int8, got ${String(dtype)}`);
      const threads = int('threads', undefined);
      const maxNewTokens = int('max-new-tokens', 32)!;
      const image = typeof ctx.values.image === 'string' ? ctx.values.image : BENCH_IMAGE;
      const { stat } = await import('node:fs/promises');
      if (!(await stat(image).catch(() => null))?.isFile()) throw new KestrelError('E_IO', `cannot read image ${image}: no such file`);
      const say = (s: string): void => { if (!ctx.json) ctx.err.write(s); };

      const { ensurePresetCheckpoint, presetName, pipeline } = await import('@kestrel/pipelines');
      let dir: string;
      let preset: string | null = null;
      if (typeof ctx.values.preset === 'string') {
        if (ctx.values.model !== undefined) throw new KestrelError('E_OPTIONS', 'give --preset or --model, not both');
        const name = presetName(ctx.values.preset);
        preset = name;
        const t0 = performance.now();
        let last = 0;
        const r = await ensurePresetCheckpoint(name, { onProgress: (e) => { if (!ctx.json && e.done !== undefined && e.done - last >= 200) { last = e.done; ctx.err.write(`writing ${name}: ${e.done}/${e.total} tensors\n`); } } });
        dir = r.dir;
        say(r.written ? `wrote ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n` : `using ${dir}\n`);
      } else if (typeof ctx.values.model === 'string') dir = ctx.values.model;
      else throw new KestrelError('E_OPTIONS', 'kestrel bench vlm needs --preset NAME or --model DIR. Run "kestrel bench vlm --help".');

      const tLoad = performance.now();
      const ask = await pipeline('ask', { model: dir, ...(dtype !== undefined ? { dtype: dtype as 'bf16' } : {}), ...(threads !== undefined ? { threads } : {}), maxNewTokens });
      const loadS = (performance.now() - tLoad) / 1000;
      say(`loaded in ${loadS.toFixed(2)} s\n`);
      try {
        const r = await ask(image, 'Describe this image in detail.');
        const vlm = ask.model;
        const result = {
          preset, model: dir, image, dtype: vlm.language.dtype, kernels: vlm.kernels.name, threads: threads ?? null,
          ...phaseTimings(loadS, r.usage),
          peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
        };
        if (ctx.json) printJson(ctx, result);
        else for (const [k, v] of Object.entries(result)) ctx.out.write(`${k} ${String(v)}\n`);
      } finally {
        ask.dispose();
      }
    },
  },
];
