import { KestrelError, WorkerPool, callbackStream, reportProgress, threadsPerWorker, workerScript, type ProgressEvent } from '@kestrel/core';
import { forWorker } from './transfer.js';
import type { PipelineCall, PipelineWorkerInit } from './pipeline-worker.js';

/** How each task's functions take their call options (index of the options argument). */
const CALL_SHAPES: Record<string, { fn: number; methods: Record<string, number> }> = {
  ask: { fn: 2, methods: { chat: 1 } },
  caption: { fn: 1, methods: {} },
  chat: { fn: 1, methods: {} },
  ground: { fn: 2, methods: { detect: 2 } },
  detect: { fn: -1, methods: {} },
  segment: { fn: -1, methods: {} },
  defects: { fn: -1, methods: {} },
  xray: { fn: -1, methods: {} },
};

/** Tasks whose options take a native kernel thread count. */
const THREADED = new Set(['ask', 'caption', 'chat', 'ground']);

interface CallReply { value: unknown; timings?: Record<string, number> }

type AnyFn = (...a: unknown[]) => unknown;

/**
 * A pipeline whose model runs in `workers` worker threads (each its own copy of the model): the same
 * function and methods as the in-process pipeline, every call a message to the least busy worker.
 */
export async function createWorkerPipeline(task: string, options: Record<string, unknown>, workers: number): Promise<unknown> {
  const shape = CALL_SHAPES[task];
  if (!shape) throw new KestrelError('E_UNSUPPORTED', `pipeline "${task}" cannot run in a worker; pass inProcess: true`);
  const { onProgress, ...rest } = options;
  const init = (i: number): PipelineWorkerInit => ({
    task,
    // workers × native threads never exceed the cores
    options: THREADED.has(task) && rest.threads === undefined ? { ...rest, threads: threadsPerWorker(workers) } : rest,
    progress: i === 0,
  });
  const script = workerScript(import.meta.url, './pipeline-worker.js');
  const pool = new WorkerPool(workers, (i) => ({
    script, init: init(i),
    // each worker its own environment copy: ONNX Runtime sessions in it size their thread pool from this
    env: { KESTREL_THREADS: String(threadsPerWorker(workers)) },
    onMessage: (m) => {
      const e = (m as { type?: string; event?: ProgressEvent }).event;
      if ((m as { type?: string }).type === 'progress' && e) reportProgress(e, typeof onProgress === 'function' ? (onProgress as (ev: ProgressEvent) => void) : undefined);
    },
  }));
  const info = (await pool.start()) as Record<string, unknown>;
  const timings: Record<string, number> = {};

  const invoke = async (method: string, optionsAt: number, args: unknown[], streamText?: (t: string) => void): Promise<unknown> => {
    const a = [...args];
    let signal: AbortSignal | undefined;
    let onText: ((t: string) => void) | undefined = streamText;
    let onStart: (() => void) | undefined;
    if (optionsAt >= 0 && a[optionsAt] !== undefined && a[optionsAt] !== null && typeof a[optionsAt] === 'object') {
      const { signal: s, onText: t, onStart: st, ...o } = a[optionsAt] as { signal?: AbortSignal; onText?: (t: string) => void; onStart?: () => void };
      signal = s;
      if (t) onText = streamText ? (x) => { t(x); streamText(x); } : t;
      onStart = st;
      a[optionsAt] = o;
    }
    // onStart cannot cross to the worker: it fires here at the first streamed piece (or the result), after
    // the worker has decoded the images and built the prompt, so errors of those steps still come first
    let started = onStart === undefined;
    const start = (): void => { if (!started) { started = true; onStart!(); } };
    const textOut = onText ?? (onStart ? (): void => undefined : undefined);
    const { value, transfer } = await forWorker(a);
    const call: PipelineCall = { method, args: value as unknown[], optionsAt, streamText: textOut !== undefined };
    const r = await pool.call<CallReply>('call', call, {
      transfer,
      ...(signal ? { signal } : {}),
      ...(textOut ? { onEvent: (d) => { start(); textOut(d as string); } } : {}),
    });
    start();
    if (r.timings) for (const [k, v] of Object.entries(r.timings)) timings[k] = (timings[k] ?? 0) + v;
    return r.value;
  };

  const fn = ((...args: unknown[]) => invoke('', shape.fn, args)) as AnyFn & Record<string, unknown>;
  for (const [k, v] of Object.entries(info)) Object.defineProperty(fn, k, { value: v, enumerable: true });
  for (const [m, at] of Object.entries(shape.methods)) fn[m] = (...args: unknown[]) => invoke(m, at, args);
  // ask.stream: text pieces as the worker sends them; the generator returns the full result
  if (task === 'ask' || task === 'chat') fn.stream = (...args: unknown[]) => callbackStream<string, unknown>((onPiece) => invoke('', shape.fn, args, onPiece));
  if (task === 'ask' || task === 'caption' || task === 'chat' || task === 'ground') {
    Object.defineProperty(fn, 'model', {
      enumerable: false,
      get() { throw new KestrelError('E_UNSUPPORTED', `this ${task} pipeline's model lives in a worker thread; create the pipeline with inProcess: true to reach the loaded VisionLanguageModel`); },
    });
  }
  if (task === 'detect' || task === 'segment') fn.timings = () => ({ ...timings });
  fn.dispose = () => pool.close();
  /** the worker pool (restarts, in-flight calls) */
  Object.defineProperty(fn, 'workerPool', { value: pool, enumerable: false });
  return fn;
}

