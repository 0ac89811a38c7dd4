import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CommandSpec } from '../command.js';
import { printJson } from '../command.js';
import type { Mode, Scenario, ScenarioResult } from '../bench/responsiveness.js';

const HELP = `Usage: kestrel bench responsiveness [options]

How long a model call holds the caller's event loop: a 10 ms setInterval runs on the calling thread
while the model works, and the worst lateness of that timer is printed, with the model in a worker
thread (the default runtime) and in process (inProcess: true, the reference), side by side. Each
scenario and mode runs in its own process (so its peak RSS is its own), after one warm-up call.
After the call the same timer runs as long again with the model idle: "idle-timer worst" is the
lateness the machine's other processes cause by themselves, the floor to read the figure against.


  generate   MoeWorkerModel / MoeLanguageModel.generate: a --prompt-tokens prompt + --new-tokens
             (only with --lm-model, or when the perf-anchor checkpoint is at ${'/tmp/perf/models/ds2moe-anchor-hf'})
  ask        pipeline('ask') on --vlm with one image, --new-tokens tokens
  inspect    pipeline('defects') with --qc-model on --images (default: 8 ELPV cells)

  --lm-model DIR       MoE checkpoint (DeepseekV2ForCausalLM) for generate
  --vlm DIR            DeepSeek-VL2 checkpoint for ask (default test/fixtures/vlm/A, a golden tiny one)
  --qc-model NAME      QC model for inspect (default defects-elpv)
  --dtype NAME         LM weights in memory: int8 | bf16 | f32 (default int8)
  --threads N          generate's native threads in both modes (default: all cores in process,
                       all cores but one in a worker, the runtimes' own defaults)
  --prompt-tokens N    generate's prompt length (default 512)
  --new-tokens N       tokens to generate (default 32)
  --only LIST          comma list of scenarios (default generate,ask,inspect)
  --json               one JSON object

Goal (issue 13): worst lateness <= 50 ms with the model in a worker.`;

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const cli = fileURLToPath(new URL('../../bin/kestrel.js', import.meta.url));
const ANCHOR = '/tmp/perf/models/ds2moe-anchor-hf';
const GOAL_MS = 50;

function defaultImages(): string[] {
  const list = `${root}models/defects-elpv/holdout.txt`;
  if (!existsSync(list)) return [];
  return readFileSync(list, 'utf8').split('\n').filter(Boolean).slice(0, 8).map((f) => `${root}datasets/elpv/${f}`);
}

/** `kestrel bench responsiveness` (also step 5 of `bench all`). */
export const commands: CommandSpec[] = [
  {
    path: ['bench', 'responsiveness'],
    summary: 'worst event-loop lateness during generate / ask / inspect, worker vs in-process',
    help: HELP,
    allowPositionals: false,
    options: {
      'lm-model': { type: 'string' }, vlm: { type: 'string' }, 'qc-model': { type: 'string' }, dtype: { type: 'string' },
      'prompt-tokens': { type: 'string' }, 'new-tokens': { type: 'string' }, only: { type: 'string' }, threads: { type: 'string' },
      // internal: run one scenario in this process and print its JSON
      scenario: { type: 'string' }, mode: { type: 'string' }, images: { type: 'string' },
    },
    async run(ctx) {
      const { KestrelError } = await import('@kestrel/core');
      const str = (k: string): string | undefined => (typeof ctx.values[k] === 'string' ? (ctx.values[k] as string) : undefined);
      const int = (k: string, def: number): number => {
        const v = str(k);
        if (v === undefined) return def;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new KestrelError('E_OPTIONS', `--${k} must be a positive integer, got ${v}`);
        return n;
      };
      const dtype = str('dtype') ?? 'int8';
      if (!['int8', 'bf16', 'f32'].includes(dtype)) throw new KestrelError('E_OPTIONS', `--dtype must be int8, bf16 or f32, got ${dtype}`);
      const lmModel = str('lm-model') ?? (existsSync(`${ANCHOR}/config.json`) ? ANCHOR : undefined);
      const vlm = str('vlm') ?? `${root}test/fixtures/vlm/A`;
      const qc = str('qc-model') ?? 'defects-elpv';
      const promptTokens = int('prompt-tokens', 512);
      const newTokens = int('new-tokens', 32);
      const threads = str('threads') !== undefined ? int('threads', 1) : undefined;
      const scenario = str('scenario');
      if (scenario !== undefined) {
        const { runScenario } = await import('../bench/responsiveness.js');
        const images = str('images')?.split(',') ?? [];
        const r = await runScenario({
          scenario: scenario as Scenario, mode: (str('mode') ?? 'worker') as Mode, ...(lmModel ? { lmModel } : {}), vlmModel: vlm, qcModel: qc,
          images, dtype: dtype as 'int8', promptTokens, newTokens, ...(threads ? { threads } : {}),
        });
        ctx.out.write(JSON.stringify(r) + '\n');
        return 0;
      }
      const only = (str('only') ?? 'generate,ask,inspect').split(',');
      for (const s of only) if (!['generate', 'ask', 'inspect'].includes(s)) throw new KestrelError('E_OPTIONS', `--only: unknown scenario "${s}" (generate, ask, inspect)`);
      const results: ScenarioResult[] = [];
      const skipped: string[] = [];
      const say = (s: string): void => { (ctx.json ? ctx.err : ctx.out).write(s); };
      for (const s of only) {
        if (s === 'generate' && !lmModel) { skipped.push('generate: no --lm-model and no perf-anchor checkpoint'); continue; }
        const images = s === 'ask' ? [`${vlm}/img0.png`] : defaultImages();
        for (const mode of ['worker', 'in-process'] as const) {
          const args = [cli, 'bench', 'responsiveness', '--scenario', s, '--mode', mode, '--vlm', vlm, '--qc-model', qc, '--dtype', dtype,
            '--prompt-tokens', String(promptTokens), '--new-tokens', String(newTokens), ...(threads ? ['--threads', String(threads)] : []), '--images', images.join(','), ...(lmModel ? ['--lm-model', lmModel] : [])];
          const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 24 });
          const line = r.stdout.trim().split('\n').at(-1) ?? '';
          if (r.status !== 0 || !line.startsWith('{')) {
            throw new KestrelError('E_INTERNAL', `bench responsiveness ${s} (${mode}) failed: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
          }
          const res = JSON.parse(line) as ScenarioResult;
          results.push(res);
          say(`${s.padEnd(8)} ${mode.padEnd(10)} worst timer lateness ${String(res.worst_late_ms).padStart(7)} ms  p99 ${String(res.p99_late_ms).padStart(7)} ms  call ${res.call_ms} ms (${res.detail})  idle-timer worst ${res.idle_worst_late_ms} ms  peak RSS ${res.peak_rss_mb} MB${mode === 'worker' ? (res.worst_late_ms <= GOAL_MS ? '  [goal <= 50 ms: met]' : '  [goal <= 50 ms: NOT met]') : ''}\n`);
        }
      }
      for (const s of skipped) say(`skipped ${s}\n`);
      if (ctx.json) printJson(ctx, { goal_ms: GOAL_MS, results, skipped });
      return 0;
    },
  },
];
