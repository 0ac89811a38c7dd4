/**
 * One scenario of `kestrel bench responsiveness`, run in its own process so its peak RSS is its own:
 * a 10 ms timer runs on the calling thread while a model call runs, and the worst lateness of that
 * timer says how long the call held the event loop.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { anchorPromptTokens } from '../commands/bench-lm.js';

export type Scenario = 'generate' | 'ask' | 'inspect';
export type Mode = 'worker' | 'in-process';

export interface ScenarioOptions {
  scenario: Scenario;
  mode: Mode;
  lmModel?: string;
  vlmModel: string;
  qcModel: string;
  images: string[];
  dtype: 'int8' | 'bf16' | 'f32';
  promptTokens: number;
  newTokens: number;
  /** native threads of the LM (default: each runtime's own: all cores in process, all but one in a worker) */
  threads?: number;
}

export interface ScenarioResult {
  scenario: Scenario;
  mode: Mode;
  /** worst lateness of the 10 ms timer during the call(s) */
  worst_late_ms: number;
  /** 99th percentile of the timer's lateness */
  p99_late_ms: number;
  /** wall time of the measured call(s) */
  call_ms: number;
  load_s: number;
  /**
   * The same timer for the same time with the model loaded and idle: the lateness this machine gives
   * any process right now (scheduling by other processes), the floor the call's figure is read against
   */
  idle_worst_late_ms: number;
  idle_p99_late_ms: number;
  /** process high-water mark (model loaded and run) */
  peak_rss_mb: number;
  detail: string;
}

/** Run `work` with a 10 ms interval beside it; lateness = how much later than 10 ms each tick came. */
async function withTimer(work: () => Promise<string>): Promise<{ worst: number; p99: number; ms: number; detail: string }> {
  const late: number[] = [];
  let last = performance.now();
  const t = setInterval(() => {
    const now = performance.now();
    late.push(Math.max(0, now - last - 10));
    last = now;
  }, 10);
  const t0 = performance.now();
  const detail = await work();
  const ms = performance.now() - t0;
  // the call's end may have blocked: wait for one more tick so that stall is counted
  await new Promise((r) => setTimeout(r, 15));
  clearInterval(t);
  late.push(Math.max(0, performance.now() - last - 10));
  const s = [...late].sort((a, b) => a - b);
  return { worst: s.at(-1) ?? 0, p99: s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? 0, ms, detail };
}

const r1 = (v: number): number => Math.round(v * 10) / 10;

export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const inProcess = o.mode === 'in-process';
  const tLoad = performance.now();
  let work: () => Promise<string>;
  let close: () => Promise<void> | void;
  if (o.scenario === 'generate') {
    if (!o.lmModel) throw new Error('generate needs --lm-model');
    const dir = o.lmModel;
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { vocab_size: number };
    const prompt = anchorPromptTokens(o.promptTokens, cfg.vocab_size);
    const opts = { maxNewTokens: o.newTokens, stopOnEos: false };
    const moe = await import('@kestrel/moe');
    if (inProcess) {
      const lm = await moe.MoeLanguageModel.load(dir, { dtype: o.dtype, ...(o.threads ? { threads: o.threads } : {}) });
      work = async () => `${(await lm.generate({ inputIds: prompt }, opts)).tokenIds.length} tokens`;
      close = () => lm.dispose();
    } else {
      const lm = await moe.MoeWorkerModel.load(dir, { dtype: o.dtype, ...(o.threads ? { threads: o.threads } : {}) });
      work = async () => `${(await lm.generate({ inputIds: prompt }, opts)).tokenIds.length} tokens`;
      close = () => lm.dispose();
    }
  } else if (o.scenario === 'ask') {
    const { pipeline } = await import('@kestrel/pipelines');
    const ask = await pipeline('ask', { model: o.vlmModel, maxNewTokens: o.newTokens, inProcess });
    const image = o.images[0]!;
    work = async () => { const r = await ask(image, 'What is in this image?'); return `${r.usage.completionTokens} tokens`; };
    close = () => ask.dispose();
  } else {
    const { pipeline } = await import('@kestrel/pipelines');
    const defects = await pipeline('defects', { model: o.qcModel, inProcess });
    work = async () => { const r = await defects(o.images); return `${r.length} images`; };
    close = () => defects.dispose();
  }
  const loadS = (performance.now() - tLoad) / 1000;
  await work(); // warm-up: page-in, thread pools, allocator
  const m = await withTimer(work);
  const idle = await withTimer(() => new Promise<string>((r) => setTimeout(() => r('idle'), Math.max(200, m.ms))));
  await close();
  return {
    scenario: o.scenario, mode: o.mode, worst_late_ms: r1(m.worst), p99_late_ms: r1(m.p99), call_ms: Math.round(m.ms), load_s: r1(loadS),
    idle_worst_late_ms: r1(idle.worst), idle_p99_late_ms: r1(idle.p99),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), detail: m.detail,
  };
}
