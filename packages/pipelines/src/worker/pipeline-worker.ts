/**
 * Worker-thread entry of a pipeline: loads the task's model here (weights never reach the caller's
 * thread) and runs calls on it. Started by {@link createWorkerPipeline}.
 */
import { parentPort } from 'node:worker_threads';
import { KestrelError, onProgress, serveWorker, type CallContext, type ProgressEvent } from '@kestrel/core';
import { asBuffers } from './transfer.js';
import { TASK_MODULES, type TaskModule } from '../task-modules.js';

/** What the caller sends to start a pipeline worker. */
export interface PipelineWorkerInit {
  task: string;
  options: Record<string, unknown>;
  /** forward this worker's progress events to the caller (the first worker of a pool) */
  progress: boolean;
}

/** One call: the pipeline's arguments, minus the call options that cannot cross (signal, onText). */
export interface PipelineCall {
  /** '' = the pipeline function itself, else one of its methods (chat, stream, timings) */
  method: string;
  args: unknown[];
  /** index in `args` of the call options object, where the signal and onText go */
  optionsAt: number;
  /** stream text pieces back as events */
  streamText: boolean;
}

type Fn = ((...a: unknown[]) => unknown) & Record<string, unknown>;

function timingsOf(p: Fn): Record<string, number> | undefined {
  return typeof p.timings === 'function' ? (p.timings as () => Record<string, number>)() : undefined;
}

/** The pipeline's plain properties (model description, runtime name) the caller mirrors. */
function plainInfo(p: Fn): Record<string, unknown> {
  const info: Record<string, unknown> = {};
  for (const k of Object.keys(p)) {
    const v = p[k];
    // plain data only: a loaded model object (class instance) stays in the worker, never cloned with its weights
    if (typeof v === 'function' || (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) !== Object.prototype && !Array.isArray(v))) continue;
    try { info[k] = structuredClone(v); } catch { /* not cloneable: stays in the worker */ }
  }
  return info;
}

serveWorker(async (data) => {
  const init = data as PipelineWorkerInit;
  const options = { ...init.options };
  // every progress event of this thread's bus goes to the caller, who reports it on its bus and listener
  if (init.progress) onProgress((e: ProgressEvent) => { parentPort?.postMessage({ type: 'progress', event: e }); });
  const path = TASK_MODULES[init.task];
  if (!path) throw new KestrelError('E_OPTIONS', `unknown pipeline task "${init.task}"`);
  const mod = (await import(new URL(`.${path}`, import.meta.url).href)) as TaskModule;
  const p = (await mod.createPipeline(init.task, options)) as Fn;
  const call = async (c: PipelineCall, ctx: CallContext): Promise<unknown> => {
    const args = asBuffers(c.args) as unknown[];
    if (c.optionsAt >= 0) {
      while (args.length <= c.optionsAt) args.push(undefined);
      const o: Record<string, unknown> = { ...(args[c.optionsAt] as Record<string, unknown> | undefined), signal: ctx.signal };
      if (c.streamText) o.onText = (t: string): void => ctx.emit(t);
      args[c.optionsAt] = o;
    }
    const f = c.method === '' ? p : (p[c.method] as Fn | undefined);
    if (typeof f !== 'function') throw new KestrelError('E_UNSUPPORTED', `the ${init.task} pipeline has no method ${c.method}`);
    const before = timingsOf(p);
    const value = await f.apply(p, args);
    const after = timingsOf(p);
    // this call's share of the stage timings; the caller sums them over its workers
    const timings = after ? Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before?.[k] ?? 0)])) : undefined;
    return { value, timings };
  };
  return {
    info: plainInfo(p),
    handlers: { call },
    close: () => (typeof p.dispose === 'function' ? (p.dispose as () => unknown)() : undefined),
  };
});
