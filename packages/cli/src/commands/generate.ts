import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

function num(v: unknown, name: string, int: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) {
    throw new Error(`--${name} must be ${int ? 'an integer' : 'a number'}, got ${String(v)}`);
  }
  return n;
}

/** `kestrel generate`: text generation with a DeepSeek-V2 MoE language model. */
export const commands: CommandSpec[] = [
  {
    path: ['generate'],
    summary: 'generate text with a DeepSeek-V2 MoE language model (streams to stdout)',
    help: `Usage: kestrel generate --model DIR (--prompt "text" | --ids 0,17,230) [options]

Runs a DeepseekV2ForCausalLM checkpoint. With tokenizer.json in DIR the prompt is text and the
answer streams as text; otherwise pass raw token ids with --ids and ids are printed.

  --model DIR            checkpoint directory (required)
  --prompt TEXT          text prompt (needs DIR/tokenizer.json)
  --ids LIST             comma-separated prompt token ids
  --max-tokens N         stop after N new tokens (default 128)
  --temperature T        0 = greedy (default); > 0 samples
  --top-k K, --top-p P   sampling filters (default off)
  --repetition-penalty R transformers-style penalty (default 1 = off)
  --seed N               sampling seed
  --stop TEXT            stop string (repeatable)
  --dtype NAME           f32 | bf16 | int8 (default f32)
  --backend NAME         auto | portable | native (default auto)
  --threads N            kernel threads
  --device NAME          cpu | cuda (default cpu; cuda needs npm run build:cuda and an NVIDIA GPU)
  --experts-on WHERE     cuda: routed experts on gpu | cpu | auto (default gpu)
  --cpu-expert-layers N  cuda: routed experts of the first N MoE layers on the CPU
  --json                 print {"tokenIds", "text", "finishReason", "usage"} at the end`,
    options: {
      model: { type: 'string' }, prompt: { type: 'string' }, ids: { type: 'string' },
      'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' },
      'repetition-penalty': { type: 'string' }, seed: { type: 'string' }, stop: { type: 'string', multiple: true },
      dtype: { type: 'string' }, backend: { type: 'string' }, threads: { type: 'string' },
      device: { type: 'string' }, 'experts-on': { type: 'string' }, 'cpu-expert-layers': { type: 'string' },
    },
    allowPositionals: false,
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const v = ctx.values;
      if (typeof v.model !== 'string') throw new KestrelError('E_OPTIONS', 'kestrel generate needs --model DIR');
      if ((v.prompt === undefined) === (v.ids === undefined)) throw new KestrelError('E_OPTIONS', 'give exactly one of --prompt TEXT or --ids LIST');
      let gen: Record<string, unknown>;
      let load: Record<string, unknown>;
      let ids: number[] | undefined;
      try {
        gen = {
          maxNewTokens: num(v['max-tokens'], 'max-tokens', true) ?? 128,
          temperature: num(v.temperature, 'temperature', false) ?? 0,
          topK: num(v['top-k'], 'top-k', true) ?? 0,
          topP: num(v['top-p'], 'top-p', false) ?? 1,
          repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty', false) ?? 1,
          ...(v.seed !== undefined ? { seed: num(v.seed, 'seed', true) } : {}),
          ...(Array.isArray(v.stop) ? { stopStrings: v.stop } : {}),
        };
        load = {
          ...(v.dtype !== undefined ? { dtype: v.dtype } : {}),
          ...(v.backend !== undefined ? { backend: v.backend } : {}),
          ...(v.threads !== undefined ? { threads: num(v.threads, 'threads', true) } : {}),
          ...(v.device !== undefined ? { device: v.device } : {}),
          ...(v['experts-on'] !== undefined ? { expertsOn: v['experts-on'] } : {}),
          ...(v['cpu-expert-layers'] !== undefined ? { cpuExpertLayers: num(v['cpu-expert-layers'], 'cpu-expert-layers', true) } : {}),
        };
        if (typeof v.ids === 'string') {
          ids = v.ids.split(',').map((s) => num(s.trim(), 'ids', true)!);
        }
      } catch (e) {
        throw new KestrelError('E_OPTIONS', (e as Error).message);
      }
      const { MoeLanguageModel } = await import('@kestrel/moe');
      const t0 = performance.now();
      const model = await MoeLanguageModel.load(v.model, load);
      const tLoad = performance.now();
      const ac = new AbortController();
      const onSig = (): void => ac.abort();
      process.once('SIGINT', onSig);
      try {
        const input = ids ? { inputIds: ids } : { prompt: v.prompt as string };
        const promptTokens = ids ? ids.length : model.tokenizer ? model.tokenizer.encode(v.prompt as string).length : 0;
        const tokenIds: number[] = [];
        let text = '';
        let first = 0;
        for await (const c of model.stream(input, { ...gen, signal: ac.signal })) {
          if (!first) first = performance.now();
          tokenIds.push(c.tokenId);
          if (c.text !== undefined) text += c.text;
          if (!ctx.json) ctx.out.write(c.text !== undefined ? c.text : `${tokenIds.length > 1 ? ',' : ''}${c.tokenId}`);
        }
        const tEnd = performance.now();
        const usage = {
          promptTokens, newTokens: tokenIds.length,
          loadSeconds: (tLoad - t0) / 1000,
          prefillTokS: first ? promptTokens / ((first - tLoad) / 1000) : 0,
          decodeTokS: tokenIds.length > 1 ? (tokenIds.length - 1) / ((tEnd - first) / 1000) : 0,
          kernels: model.kernels.name,
        };
        if (ctx.json) printJson(ctx, { tokenIds, ...(model.tokenizer ? { text } : {}), usage });
        else {
          ctx.out.write('\n');
          ctx.err.write(`${usage.newTokens} tokens; prefill ${usage.prefillTokS.toFixed(1)} tok/s, decode ${usage.decodeTokS.toFixed(1)} tok/s (${usage.kernels})\n`);
        }
      } finally {
        process.off('SIGINT', onSig);
        model.dispose();
      }
    },
  },
];
