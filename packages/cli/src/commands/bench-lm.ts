import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';
import { profileKernels, type ProfileRow } from './bench-lm-profile.js';

const HELP = `Usage: kestrel bench lm --model DIR [options]

Prefill and decode speed of the MoE language model, measured like llama.cpp's pp/tg benchmark in
../shared/tools/perf-anchor: the same prompt ids (BOS + LCG ids, seed 12345) as one prefill, timed to
the first greedy token, then --gen-tokens greedy single-token decodes continuing the KV cache (EOS
ignored). One warm-up, then medians over --reps runs.

  --model DIR            DeepseekV2ForCausalLM checkpoint directory (required)
  --prompt-tokens N      prompt length (default 512)
  --gen-tokens N         decode steps after the first token (default 128)
  --threads N            kernel threads (default: one per core)
  --dtype NAME           int8 | bf16 | f32 weights in memory (default int8)
  --backend NAME         auto | native | portable (default auto)
  --reps N               repetitions (default 3)
  --quiet-wait S         before each run, wait up to S seconds until other processes use < 0.15 core
                         (as the llama.cpp anchor bench does; default 0 = don't wait)
  --profile              after the timed runs, one more prefill + decode with every kernel call timed:
                         prints where the time goes (per op, linears by weight shape, per phase)
  --no-probe             skip the machine probe
  --json                 print one JSON object

Prints prefill_tok_s, decode_tok_s, peak_rss_mb (process high-water mark, load included), weight_mb,
kv_cache_mb, load_s, greedy_head (the first 16 greedy tokens) and, per run, the CPU other processes
used meanwhile (other_cores): on a shared machine that load skews the figures.

With the native kernels it first probes the machine with the same engine and threads (read bandwidth over
256 MB, f32 FMA and int8 dot peaks of the ISA in use) and prints decode_bound_tok_s (bandwidth / weight
bytes read per decoded token), decode_fraction_of_bound, prefill_peak_tok_s (peak / 2·multiply-adds per
prompt token: every linear but lm_head, which prefill runs for the last token only; attention not counted;
int8 peak for --dtype int8, f32 peak otherwise) and prefill_fraction_of_peak.`;

/** The perf-anchor prompt: BOS (0) then ids from a 32-bit LCG (seed 12345), so both engines see the same ids. */
export function anchorPromptTokens(n: number, vocab: number, bos = 0): number[] {
  const out = [bos];
  let x = 12345 >>> 0;
  while (out.length < n) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(2 + ((x >>> 8) % (vocab - 2)));
  }
  return out.slice(0, n);
}

interface CpuSnap { busy: number; total: number; self: number }

// Machine-wide busy jiffies (/proc/stat, 100 Hz) minus this process's own CPU time = what others used.
function cpuSnap(): CpuSnap | null {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const u = process.cpuUsage();
    return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal, self: (u.user + u.system) / 1e4 };
  } catch {
    return null;
  }
}

function otherCores(a: CpuSnap | null, b: CpuSnap | null): number | null {
  if (!a || !b || b.total <= a.total) return null;
  const other = Math.max(0, b.busy - a.busy - (b.self - a.self));
  return Math.round((other / (b.total - a.total)) * cpus().length * 100) / 100;
}

const median = (v: number[]): number => {
  const s = [...v].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}

const r2 = (v: number): number => Math.round(v * 100) / 100;

/** Wait (up to maxS seconds) for a second in which other processes use < 0.15 core; returns seconds waited. */
async function waitQuiet(maxS: number): Promise<number> {
  const t0 = performance.now();
  while ((performance.now() - t0) / 1000 < maxS) {
    const a = cpuSnap();
    await new Promise((r) => setTimeout(r, 1000));
    const o = otherCores(a, cpuSnap());
    if (o === null || o < 0.15) break;
  }
  return Math.round((performance.now() - t0) / 100) / 10;
}

/**
 * The machine's limits, probed by the same native engine that ran the model, turned into the decode bound
 * (bandwidth / weight bytes per decoded token) and the prefill peak (ops peak / 2·multiply-adds per prompt token).
 */
async function machineBound(dir: string, dtype: string, native: typeof import('@kestrel/native'), prefill: number, decode: number | null): Promise<Record<string, unknown>> {
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number | null>;
  const probe = await native.probeMachine();
  const bpp = native.BYTES_PER_PARAM[dtype as keyof typeof native.BYTES_PER_PARAM] ?? 4;
  const bytes = native.activeWeightBytes(cfg, bpp);
  // prefill runs lm_head for the last token only (lastOnly), so it is left out of the per-token work
  const macs = native.activeParams(cfg) - cfg.vocab_size! * cfg.hidden_size!;
  const peak = dtype === 'int8' ? probe.int8Gops : probe.f32Gflops;
  const decodeBound = (probe.readGBps * 1e9) / bytes;
  const prefillPeak = (peak * 1e9) / (2 * macs);
  return {
    machine: { read_gb_s: r2(probe.readGBps), f32_gflop_s: r2(probe.f32Gflops), int8_gop_s: r2(probe.int8Gops), isa: probe.isa, threads: probe.threads },
    weight_bytes_per_token: bytes,
    decode_bound_tok_s: r2(decodeBound),
    decode_fraction_of_bound: decode === null ? null : Math.round((decode / decodeBound) * 1000) / 1000,
    prefill_peak_tok_s: r2(prefillPeak),
    prefill_fraction_of_peak: Math.round((prefill / prefillPeak) * 1000) / 1000,
  };
}

/** `kestrel bench lm`: prefill / decode tokens per second and peak memory of MoeLanguageModel. */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'lm'],
    summary: 'measure MoE LM prefill and decode speed (tok/s, llama.cpp pp/tg style) and peak RSS',
    help: HELP,
    allowPositionals: false,
    options: {
      model: { type: 'string' },
      'prompt-tokens': { type: 'string' },
      'gen-tokens': { type: 'string' },
      threads: { type: 'string' },
      dtype: { type: 'string' },
      backend: { type: 'string' },
      reps: { type: 'string' },
      'quiet-wait': { type: 'string' },
      profile: { type: 'boolean' },
      'no-probe': { type: 'boolean' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const int = (name: string, def: number | undefined, min: number): number | undefined => {
        const v = ctx.values[name];
        if (v === undefined) return def;
        const n = Number(v);
        if (typeof v !== 'string' || !Number.isInteger(n) || n < min) throw new KestrelError('E_OPTIONS', `--${name} must be an integer >= ${min}, got ${String(v)}`);
        return n;
      };
      const dir = ctx.values.model;
      if (typeof dir !== 'string' || dir === '') throw new KestrelError('E_OPTIONS', 'kestrel bench lm needs --model DIR');
      const pp = int('prompt-tokens', 512, 1)!;
      const tg = int('gen-tokens', 128, 0)!;
      const reps = int('reps', 3, 1)!;
      const quietWait = int('quiet-wait', 0, 0)!;
      const threads = int('threads', undefined, 1);
      const dtype = (ctx.values.dtype ?? 'int8') as string;
      if (!['int8', 'bf16', 'f32'].includes(dtype)) throw new KestrelError('E_OPTIONS', `--dtype must be int8, bf16 or f32, got ${dtype}`);
      const backend = (ctx.values.backend ?? 'auto') as string;

      const { MoeLanguageModel } = await import('@kestrel/moe');
      const native = await import('@kestrel/native');
      const say = (s: string): void => { if (!ctx.json) ctx.err.write(s); };
      const tLoad = performance.now();
      const base = await native.getKernels({ backend: backend as 'auto', ...(threads !== undefined ? { threads } : {}) });
      const prof = ctx.values.profile === true ? profileKernels(base) : null;
      const lm = await MoeLanguageModel.load(dir, { dtype: dtype as 'int8', kernels: prof ? prof.kernels : base });
      const loadS = (performance.now() - tLoad) / 1000;
      say(`loaded ${dir} (${dtype}, ${lm.kernels.name}) in ${loadS.toFixed(1)} s\n`);
      try {
        const prompt = anchorPromptTokens(pp, lm.config.vocab);
        // warm-up (page-in, thread pool start, allocator), as the llama.cpp bench does
        {
          const n = Math.min(pp, 16);
          const cache = lm.createCache(n + 2);
          const o = lm.forward({ inputIds: prompt.slice(0, n), cache }, { lastOnly: true });
          lm.forward({ inputIds: [argmax(o.logits.data as Float32Array)], cache }, { lastOnly: true });
        }
        const runs: Array<{ prefill_tok_s: number; decode_tok_s: number | null; other_cores: number | null; waited_s: number }> = [];
        let kvBytes = 0;
        let greedyHead: number[] = [];
        for (let r = 0; r < reps; r++) {
          const waited = quietWait > 0 ? await waitQuiet(quietWait) : 0;
          const c0 = cpuSnap();
          const cache = lm.createCache(pp + tg + 1);
          const t0 = performance.now();
          let tok = argmax(lm.forward({ inputIds: prompt, cache }, { lastOnly: true }).logits.data as Float32Array);
          const t1 = performance.now();
          const head = [tok];
          for (let i = 0; i < tg; i++) {
            tok = argmax(lm.forward({ inputIds: [tok], cache }, { lastOnly: true }).logits.data as Float32Array);
            if (head.length < 16) head.push(tok);
          }
          greedyHead = head;
          const t2 = performance.now();
          kvBytes = cache.byteLength;
          const run = { prefill_tok_s: r2(pp / ((t1 - t0) / 1000)), decode_tok_s: tg > 0 ? r2(tg / ((t2 - t1) / 1000)) : null, other_cores: otherCores(c0, cpuSnap()), waited_s: waited };
          runs.push(run);
          say(`run ${r + 1}/${reps}: prefill ${run.prefill_tok_s} tok/s, decode ${run.decode_tok_s ?? '-'} tok/s (other processes: ${run.other_cores ?? '?'} cores)\n`);
        }
        let profile: ProfileRow[] | undefined;
        if (prof) {
          const cache = lm.createCache(pp + tg + 1);
          prof.phase('prefill');
          let t = performance.now();
          let tok = argmax(lm.forward({ inputIds: prompt, cache }, { lastOnly: true }).logits.data as Float32Array);
          prof.addWall('prefill', performance.now() - t);
          prof.phase('decode');
          t = performance.now();
          for (let i = 0; i < tg; i++) tok = argmax(lm.forward({ inputIds: [tok], cache }, { lastOnly: true }).logits.data as Float32Array);
          prof.addWall('decode', performance.now() - t);
          prof.phase(null);
          profile = prof.report();
          if (!ctx.json) for (const row of profile) ctx.err.write(`${row.phase.padEnd(8)} ${row.op.padEnd(30)} ${String(row.calls).padStart(6)} calls ${row.ms.toFixed(1).padStart(9)} ms ${(row.share * 100).toFixed(1).padStart(5)} %\n`);
        }
        const prefillTok = r2(median(runs.map((x) => x.prefill_tok_s)));
        const decodeTok = tg > 0 ? r2(median(runs.map((x) => x.decode_tok_s!))) : null;
        const bound = lm.kernels.name.startsWith('native-cpu') && ctx.values['no-probe'] !== true ? await machineBound(dir, lm.dtype, native, prefillTok, decodeTok) : null;
        const result = {
          model: dir,
          dtype: lm.dtype,
          kernels: lm.kernels.name,
          threads: threads ?? null,
          prompt_tokens: pp,
          gen_tokens: tg,
          reps,
          prefill_tok_s: prefillTok,
          decode_tok_s: decodeTok,
          ...(bound ?? {}),
          peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
          weight_mb: Math.round(lm.weightBytes / 2 ** 20),
          kv_cache_mb: r2(kvBytes / 2 ** 20),
          load_s: Math.round(loadS * 10) / 10,
          // first greedy tokens, comparable with the llama.cpp bench's greedyHead on the same model
          greedy_head: greedyHead,
          runs,
          ...(profile ? { profile } : {}),
        };
        if (ctx.json) printJson(ctx, result);
        else {
          ctx.out.write(`prefill_tok_s ${result.prefill_tok_s}\ndecode_tok_s ${result.decode_tok_s}\npeak_rss_mb ${result.peak_rss_mb}\n`);
          if (bound) for (const [k, v] of Object.entries(bound)) ctx.out.write(`${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
        }
      } finally {
        lm.dispose();
      }
    },
  },
];
