import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';

function int(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${String(v)}`);
  return n;
}

/** `kestrel bench lm`: prefill / decode throughput and peak memory of the MoE language model. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'lm'],
    summary: 'measure MoE LM prefill and decode speed (tok/s) and peak RSS',
    help: `Usage: kestrel bench lm --model DIR [--prompt-tokens 512] [--gen-tokens 128] [--threads N]
                        [--dtype int8|bf16|f32] [--backend auto|native|portable] [--json]

Loads a DeepseekV2ForCausalLM checkpoint, prefills a deterministic prompt of --prompt-tokens ids in
one pass, then decodes --gen-tokens tokens greedily through the KV cache (EOS ignored). Prints
prefill_tok_s, decode_tok_s, load_s, weight_mb and peak_rss_mb (process high-water mark).`,
    options: {
      model: { type: 'string' }, 'prompt-tokens': { type: 'string' }, 'gen-tokens': { type: 'string' },
      threads: { type: 'string' }, dtype: { type: 'string' }, backend: { type: 'string' },
    },
    allowPositionals: false,
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const v = ctx.values;
      if (typeof v.model !== 'string') throw new KestrelError('E_OPTIONS', 'kestrel bench lm needs --model DIR');
      let promptTokens: number, genTokens: number, threads: number | undefined;
      try {
        promptTokens = int(v['prompt-tokens'], 'prompt-tokens', 512);
        genTokens = int(v['gen-tokens'], 'gen-tokens', 128);
        threads = v.threads === undefined ? undefined : int(v.threads, 'threads', 0);
      } catch (e) {
        throw new KestrelError('E_OPTIONS', (e as Error).message);
      }
      if (promptTokens < 1) throw new KestrelError('E_OPTIONS', '--prompt-tokens must be at least 1');
      const { MoeLanguageModel } = await import('@kestrel/moe');
      const t0 = performance.now();
      const lm = await MoeLanguageModel.load(v.model, {
        ...(v.dtype !== undefined ? { dtype: v.dtype as 'f32' } : {}),
        ...(v.backend !== undefined ? { backend: v.backend as 'auto' } : {}),
        ...(threads ? { threads } : {}),
      });
      const loadS = (performance.now() - t0) / 1000;
      try {
        // deterministic prompt: bos + LCG ids that avoid the special ids
        const special = new Set([...lm.eosIds, lm.config.bosId ?? -1]);
        const ids: number[] = [lm.config.bosId ?? 0];
        let x = 12345;
        while (ids.length < promptTokens) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 1;
          const id = x % lm.config.vocab;
          if (!special.has(id)) ids.push(id);
        }
        const cache = lm.createCache(promptTokens + genTokens + 1);
        const tp = performance.now();
        let logits = lm.forward({ inputIds: ids, cache }, { lastOnly: true }).logits.data;
        const prefillS = (performance.now() - tp) / 1000;
        const argmax = (a: Float32Array): number => { let b = 0; for (let i = 1; i < a.length; i++) if (a[i]! > a[b]!) b = i; return b; };
        const td = performance.now();
        for (let i = 0; i < genTokens; i++) {
          logits = lm.forward({ inputIds: [argmax(logits)], cache }, { lastOnly: true }).logits.data;
        }
        const decodeS = (performance.now() - td) / 1000;
        const res = {
          model: v.model,
          dtype: lm.dtype,
          kernels: lm.kernels.name,
          threads: threads ?? null,
          prompt_tokens: promptTokens,
          gen_tokens: genTokens,
          prefill_tok_s: promptTokens / prefillS,
          decode_tok_s: genTokens ? genTokens / decodeS : 0,
          load_s: loadS,
          weight_mb: lm.weightBytes / 2 ** 20,
          kv_cache_mb: cache.byteLength / 2 ** 20,
          peak_rss_mb: process.resourceUsage().maxRSS / 1024,
        };
        if (ctx.json) printJson(ctx, res);
        else for (const [k, val] of Object.entries(res)) ctx.out.write(`${k}: ${typeof val === 'number' && !Number.isInteger(val) ? val.toFixed(2) : String(val)}\n`);
      } finally {
        lm.dispose();
      }
    },
  },
];
