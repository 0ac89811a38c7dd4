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
  --onnx FILE            also run this ONNX export of the same vision tower (scripts/siglip-onnx) with
                         onnxruntime-node on the same tiles and threads; prints the time ratio, the ViT's
                         GFLOP/s and the machine's fp32 FMA peak (native/bench/fma-peak.c, built with cc)
  --json                 print one JSON object

Prints load_s, peak_rss_mb (process high-water mark), tiles, image_tokens, vit_ms_per_tile, first_token_s,
prefill_tok_s, decode_tok_s and the rest of the phases (as \`kestrel ask --timings\`).`;

const here = dirname(fileURLToPath(import.meta.url));
/** The bundled photo: packages/cli/{src,dist}/commands -> repository root. */
export const BENCH_IMAGE = resolve(here, '..', '..', '..', '..', 'datasets', 'coco-val2017-128', 'images', '000000001000.jpg');

/** Multiply-adds x 2 of one ViT tile: patch conv, per block qkv + proj + MLP and the two attention products. */
export function vitGflopPerTile(c: { image_size: number; patch_size: number; width: number; layers: number; mlp_ratio: number }): number {
  const g = Math.floor(c.image_size / c.patch_size);
  const N = g * g;
  const D = c.width;
  const M = Math.floor(D * c.mlp_ratio);
  const block = 2 * N * (3 * D * D + D * D + 2 * D * M) + 2 * 2 * N * N * D;
  return (2 * N * 3 * c.patch_size * c.patch_size * D + c.layers * block) / 1e9;
}

/** The fp32 FMA peak from native/bench/fma-peak.c (built here with cc), or why there is none. */
async function fmaPeak(threads: number): Promise<unknown> {
  const { execFileSync } = await import('node:child_process');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const src = resolve(here, '..', '..', '..', '..', 'native', 'bench', 'fma-peak.c');
  const bin = join(tmpdir(), `kestrel-fma-peak-${process.pid}`);
  try {
    execFileSync('cc', ['-O2', '-pthread', '-o', bin, src], { stdio: 'ignore' });
    return JSON.parse(execFileSync(bin, [String(threads), '2'], { encoding: 'utf8' })) as unknown;
  } catch (e) {
    return { error: `probe not run: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    const { rmSync } = await import('node:fs');
    rmSync(bin, { force: true });
  }
}

/** `kestrel bench vlm`: load and one answer of a real-size DeepSeek-VL2 checkpoint, phase by phase. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'vlm'],
    summary: 'real-size VLM benchmark: writes a random-weight published-shape checkpoint once, then times load, ViT, prefill, decode',
    help: HELP,
    allowPositionals: false,
    options: {
      preset: { type: 'string' }, model: { type: 'string' }, dtype: { type: 'string' }, threads: { type: 'string' },
      image: { type: 'string' }, 'max-new-tokens': { type: 'string' }, onnx: { type: 'string' },
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
      const ask = await pipeline('ask', { inProcess: true, model: dir, ...(dtype !== undefined ? { dtype: dtype as 'bf16' } : {}), ...(threads !== undefined ? { threads } : {}), maxNewTokens });
      const loadS = (performance.now() - tLoad) / 1000;
      say(`loaded in ${loadS.toFixed(2)} s\n`);
      try {
        const r = await ask(image, 'Describe this image in detail.');
        const vlm = ask.model;
        const t = phaseTimings(loadS, r.usage, r.timings!);
        const result: Record<string, unknown> = {
          preset, model: dir, image, dtype: vlm.language.dtype, kernels: vlm.kernels.name, threads: threads ?? null,
          ...t,
          peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
        };
        if (typeof ctx.values.onnx === 'string') {
          const { runOnnxVision } = await import('@kestrel/pipelines');
          const { cpus } = await import('node:os');
          const pre = await vlm.processor.preprocess([image]);
          const nThreads = threads ?? cpus().length;
          // Kestrel's features of the first tile, to check the export computes the same thing
          const ref = vlm.vision.encode(pre.pixelValues.slice0(0, 1)).features;
          const o = await runOnnxVision(ctx.values.onnx, pre.pixelValues, nThreads);
          const first = await runOnnxVision(ctx.values.onnx, pre.pixelValues.slice0(0, 1), nThreads, ref);
          const gflop = vitGflopPerTile(vlm.vision.config);
          result.onnx = {
            file: ctx.values.onnx, ms_per_tile: Number(o.msPerTile.toFixed(1)), max_rel_diff_tile0: first.maxRelDiff,
            ratio_kestrel_over_ort: Number((t.vit_ms_per_tile! / o.msPerTile).toFixed(2)),
            vit_gflop_per_tile: Number(gflop.toFixed(1)),
            kestrel_vit_gflops: Number((gflop / (t.vit_ms_per_tile! / 1000)).toFixed(1)), ort_vit_gflops: Number((gflop / (o.msPerTile / 1000)).toFixed(1)),
          };
          result.fp32_fma_peak = await fmaPeak(nThreads);
        }
        if (ctx.json) printJson(ctx, result);
        else for (const [k, v] of Object.entries(result)) ctx.out.write(`${k} ${String(v)}\n`);
      } finally {
        ask.dispose();
      }
    },
  },
];
