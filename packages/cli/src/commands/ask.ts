import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';
import type { ChatTimings, ChatUsage } from '@kestrel/pipelines';

const HELP = `Usage: kestrel ask --model DIR|openai:URL --image IMG [--image IMG2] [options] "question"

Answers a question about one or more images with a DeepSeek-VL2-format checkpoint (config.json,
processor_config.json, model.safetensors, tokenizer.json), or with a model on a remote
OpenAI-compatible server (--model openai:http://host:port/v1: vLLM, SGLang, kestrel serve --vlm).
The answer streams to stdout as it is generated; token counts and time go to stderr.

  --model DIR|openai:URL  checkpoint directory, or openai: + the server's base URL (required)
  --remote-model NAME     remote: the model id to ask for (default: the server's only model);
                          the API key is read from $KESTREL_OPENAI_API_KEY
  --image FILE            image file; repeat for several images in one prompt (required)
  --max-new-tokens N      stop after N tokens (default 256)
  --temperature T         0 = greedy (default); > 0 samples
  --top-p P, --top-k K    sampling filters (default off)
  --seed N                sampling seed
  --system TEXT           system prompt (default none)
  --backend NAME          auto | portable | native (default auto)
  --dtype NAME            weights in memory (vision tower, projector, language model): f32 | bf16 | int8
                          (default: the checkpoint's own; BF16 stays bf16, a \`kestrel quantize\` model is int8)
  --device NAME           cpu | cuda (default cpu; cuda needs npm run build:cuda and an NVIDIA GPU)
  --experts-on WHERE      cuda: routed experts on gpu | cpu | auto (default gpu)
  --cpu-expert-layers N   cuda: routed experts of the first N MoE layers on the CPU
  --timings               print the phases (load, tiles, vision ms per tile, prefill, first token, decode)
                          as one JSON line on stderr (with --json: a "timings" field)
  --json                  print {"text", "usage"} as JSON at the end instead of streaming`;

function num(v: unknown, name: string, int: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) {
    throw Object.assign(new Error(`--${name} must be ${int ? 'an integer' : 'a number'}, got ${String(v)}`), { kestrelOptions: true });
  }
  return n;
}

/** Options shared by `ask` and `caption` (parsed from CLI flags). */
export async function modelFlags(values: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { KestrelError } = await import('@kestrel/core');
  try {
    const o: Record<string, unknown> = {};
    const set = (k: string, v: unknown): void => { if (v !== undefined) o[k] = v; };
    set('maxNewTokens', num(values['max-new-tokens'], 'max-new-tokens', true));
    set('temperature', num(values.temperature, 'temperature', false));
    set('topP', num(values['top-p'], 'top-p', false));
    set('topK', num(values['top-k'], 'top-k', true));
    set('seed', num(values.seed, 'seed', true));
    set('threads', num(values.threads, 'threads', true));
    set('backend', values.backend);
    set('dtype', values.dtype);
    set('device', values.device);
    set('expertsOn', values['experts-on']);
    set('cpuExpertLayers', num(values['cpu-expert-layers'], 'cpu-expert-layers', true));
    set('systemPrompt', values.system);
    set('remoteModel', values['remote-model']);
    return o;
  } catch (e) {
    throw new KestrelError('E_OPTIONS', (e as Error).message);
  }
}

export const MODEL_FLAGS = {
  model: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  backend: { type: 'string' },
  dtype: { type: 'string' },
  device: { type: 'string' },
  'experts-on': { type: 'string' },
  'cpu-expert-layers': { type: 'string' },
  system: { type: 'string' },
  'remote-model': { type: 'string' },
} as const;

/** The phases of one answer in the units `kestrel bench vlm` prints (seconds, ms per tile, tokens per second). */
export function phaseTimings(loadS: number, u: ChatUsage, t: ChatTimings): Record<string, number> {
  const r = (x: number, d = 3): number => Number(x.toFixed(d));
  return {
    load_s: r(loadS), tiles: t.tiles, image_tokens: u.imageTokens, prompt_tokens: u.promptTokens, new_tokens: u.completionTokens,
    preprocess_ms: r(t.preprocessMs, 1), vit_ms: r(t.visionMs, 1), vit_ms_per_tile: r(t.visionMsPerTile, 1), projector_ms: r(t.projectorMs, 1),
    prefill_s: r(t.prefillMs / 1000), first_token_s: r(t.firstTokenMs / 1000), prefill_tok_s: r(t.prefillTokS, 1), decode_tok_s: r(t.decodeTokS, 2),
  };
}

/** `kestrel ask`: a question about images, answered by a local VLM. */
export const commands: CommandSpec[] = [
  {
    path: ['ask'],
    summary: 'ask a question about image(s) with a DeepSeek-VL2 model, local or on an OpenAI-compatible server (streams the answer)',
    help: HELP,
    options: { ...MODEL_FLAGS, image: { type: 'string', multiple: true }, timings: { type: 'boolean' } },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const model = ctx.values.model;
      const images = (ctx.values.image as string[] | undefined) ?? [];
      if (typeof model !== 'string') throw new KestrelError('E_OPTIONS', '--model DIR is required. Run "kestrel ask --help".');
      if (images.length === 0) throw new KestrelError('E_OPTIONS', 'at least one --image FILE is required. Run "kestrel ask --help".');
      const question = ctx.positionals.join(' ').trim();
      if (!question) throw new KestrelError('E_OPTIONS', 'the question is missing: kestrel ask --model DIR --image a.jpg "What is wrong with this part?"');
      const { stat } = await import('node:fs/promises');
      for (const f of images) {
        const st = await stat(f).catch(() => null);
        if (!st?.isFile()) throw new KestrelError('E_IO', `cannot read image ${f}: no such file`);
      }
      const { pipeline } = await import('@kestrel/pipelines');
      const t0 = performance.now();
      const ask = await pipeline('ask', { model, ...(await modelFlags(ctx.values)) });
      const loadS = (performance.now() - t0) / 1000;
      const timings = ctx.values.timings === true;
      try {
        if (ctx.json) {
          const r = await ask(images, question);
          printJson(ctx, timings && r.timings ? { ...r, timings: phaseTimings(loadS, r.usage, r.timings) } : { text: r.text, usage: r.usage });
          return;
        }
        const gen = ask.stream(images, question);
        let r = await gen.next();
        while (!r.done) { ctx.out.write(r.value); r = await gen.next(); }
        ctx.out.write('\n');
        const u = r.value.usage;
        // A remote server does not say how many prompt tokens were image tokens.
        const imageTokens = ask.remote ? '' : ` (${u.imageTokens} image)`;
        const on = ask.remote ? `, on ${ask.remote.baseUrl}` : '';
        ctx.err.write(`[${u.promptTokens} prompt tokens${imageTokens}, ${u.completionTokens} generated, ${(u.ms / 1000).toFixed(2)} s${on}]\n`);
        if (timings && r.value.timings) ctx.err.write(JSON.stringify(phaseTimings(loadS, u, r.value.timings)) + '\n');
      } finally {
        ask.dispose();
      }
    },
  },
];
