import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';
import { MODEL_FLAGS, modelFlags } from './ask.js';

const HELP = `Usage: kestrel caption --model DIR|openai:URL [options] IMAGE...

Captions each image with a DeepSeek-VL2-format checkpoint (needs tokenizer.json). With --json (or
--out FILE) the result is COCO caption-results JSON, [{"image_id", "caption"}], which
"kestrel eval captions --results" scores directly. image_id is the number in the file name when the
name is all digits (COCO: 000000397133.jpg -> 397133), else the file name without extension.

  --model DIR|openai:URL  checkpoint directory, or a remote OpenAI-compatible server (required;
                          --remote-model NAME and $KESTREL_OPENAI_API_KEY as for "kestrel ask")
  --prompt TEXT           the instruction (default "Describe this image in one sentence.")
  --out FILE              write the JSON results to FILE (atomically)
  --max-new-tokens N      (default 64); --temperature, --top-p, --top-k, --seed, --system,
  --backend, --dtype, --threads, --device, --experts-on, --cpu-expert-layers as for "kestrel ask"
  --json                  JSON results on stdout`;

/** COCO-style image id from a file name. */
export function imageIdFor(path: string): number | string {
  const base = path.replace(/^.*[\\/]/, '');
  const stem = base.includes('.') ? base.slice(0, base.lastIndexOf('.')) : base;
  return /^\d+$/.test(stem) && Number.isSafeInteger(Number(stem)) ? Number(stem) : stem;
}

/** `kestrel caption`: captions for images, as COCO results JSON. */
export const commands: CommandSpec[] = [
  {
    path: ['caption'],
    summary: 'caption images with a DeepSeek-VL2 model, local or remote ([{image_id, caption}] for eval captions)',
    help: HELP,
    options: { ...MODEL_FLAGS, prompt: { type: 'string' }, out: { type: 'string' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const model = ctx.values.model;
      if (typeof model !== 'string') throw new KestrelError('E_OPTIONS', '--model DIR is required. Run "kestrel caption --help".');
      if (ctx.positionals.length === 0) throw new KestrelError('E_OPTIONS', 'give at least one image file: kestrel caption --model DIR img1.jpg img2.jpg');
      const ids = ctx.positionals.map(imageIdFor);
      const seen = new Set<number | string>();
      for (const [i, id] of ids.entries()) {
        if (seen.has(id)) throw new KestrelError('E_OPTIONS', `two images map to image_id ${JSON.stringify(id)} (${ctx.positionals[i]}); rename one`);
        seen.add(id);
      }
      // Check the files before loading the model, so a typo fails in milliseconds.
      const { stat } = await import('node:fs/promises');
      for (const f of ctx.positionals) {
        const st = await stat(f).catch(() => null);
        if (!st?.isFile()) throw new KestrelError('E_IO', `cannot read image ${f}: no such file`);
      }
      // A directory as --out would only fail after every image was captioned.
      if (typeof ctx.values.out === 'string' && (await stat(ctx.values.out).catch(() => null))?.isDirectory()) {
        throw new KestrelError('E_OPTIONS', `--out ${ctx.values.out} is a directory; give a file name such as ${ctx.values.out.replace(/\/+$/, '')}/captions.json`);
      }
      if (typeof ctx.values.out === 'string') {
        // Nor can it go under a file (the folders are created only when writing, at the end).
        const { dirname, resolve } = await import('node:path');
        let up = dirname(resolve(ctx.values.out));
        while (!(await stat(up).catch(() => null)) && dirname(up) !== up) up = dirname(up);
        if ((await stat(up).catch(() => null))?.isDirectory() === false) throw new KestrelError('E_IO', `cannot write ${ctx.values.out}: ${up} is a file`);
      }
      const { pipeline, writeFileAtomic } = await import('@kestrel/pipelines');
      const prompt = ctx.values.prompt;
      const caption = await pipeline('caption', { model, ...(await modelFlags(ctx.values)), ...(typeof prompt === 'string' ? { prompt } : {}) });
      const results: { image_id: number | string; caption: string }[] = [];
      try {
        for (const [i, file] of ctx.positionals.entries()) {
          const { caption: text } = await caption(file);
          results.push({ image_id: ids[i]!, caption: text });
          if (!ctx.json && typeof ctx.values.out !== 'string') ctx.out.write(`${file}: ${text}\n`);
          else ctx.err.write(`\r${i + 1}/${ctx.positionals.length} captioned`);
        }
      } finally {
        // End the progress line also when an image fails, so the error starts on its own line.
        if ((ctx.json || typeof ctx.values.out === 'string') && results.length > 0) ctx.err.write('\n');
        caption.dispose();
      }
      // writeFileAtomic also creates missing parent folders (as detect --out does), so the captions are not lost.
      if (typeof ctx.values.out === 'string') await writeFileAtomic(ctx.values.out, JSON.stringify(results, null, 2) + '\n');
      if (ctx.json) printJson(ctx, results);
    },
  },
];
