import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import { TASK_MODULES, type TaskModule } from './task-modules.js';
import { isRemoteModel } from './remote/options.js';
import { createWorkerPipeline } from './worker/worker-pipeline.js';

/** Where a pipeline's model runs; accepted by every task besides its own options. */
export const RuntimeOptionsSchema = z.object({
  /** run the model on the calling thread (today's scripts and tests that reach the loaded model); default: a worker thread */
  inProcess: z.boolean().default(false),
  /** worker threads, each with its own copy of the model; native threads per worker are sized so workers × threads ≤ cores */
  workers: z.number().int().positive().default(1),
}).strict();
export type RuntimeOptions = z.input<typeof RuntimeOptionsSchema>;

/** True when `v` can be posted to a worker (no functions, no live objects of this thread such as a loaded model). */
function cloneable(v: unknown): boolean {
  try { structuredClone(v); return true; } catch { return false; }
}

/**
 * Task name -> the call signature of the pipeline it makes. Task modules add their entry by module
 * augmentation:
 *
 * ```ts
 * declare module '../registry.js' {
 *   interface PipelineTasks { detect: { options: DetectOptionsInput; fn: DetectPipeline } }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface PipelineTasks {}


/** Tasks that also run on a remote OpenAI-compatible server (`model: 'openai:URL'`). */
const REMOTE_TASKS = new Set(['ask', 'caption', 'chat', 'ground']);

export type { TaskModule } from './task-modules.js';

/** Task names this build knows about. */
export function pipelineTasks(): string[] {
  return Object.keys(TASK_MODULES);
}

/**
 * Create a pipeline for a task. The model and its runtime are loaded once, in a worker thread (weights
 * never reach the calling thread, so its event loop stays free while the model works); `workers: N`
 * loads N copies that run in parallel; `inProcess: true` loads it on the calling thread instead. The
 * returned function runs the task on inputs; its results are the same plain objects either way.
 *
 * @example
 * const detect = await pipeline('detect', { model: 'centernet' });
 * const [boxes] = await detect(['street.jpg']);
 */
export async function pipeline<T extends keyof PipelineTasks>(
  task: T,
  options: (PipelineTasks[T] extends { options: infer O } ? O : never) & RuntimeOptions,
): Promise<PipelineTasks[T] extends { fn: infer F } ? F : never>;
export async function pipeline(task: string, options?: unknown): Promise<unknown>;
export async function pipeline(task: string, options?: unknown): Promise<unknown> {
  const remote = REMOTE_TASKS.has(task) && isRemoteModel((options as { model?: unknown } | undefined)?.model);
  const path = remote ? './remote/index.js' : TASK_MODULES[task];
  if (!path) {
    throw new KestrelError('E_OPTIONS', `unknown pipeline task "${task}"; known tasks: ${pipelineTasks().join(', ')}`);
  }
  let mod: TaskModule;
  try {
    mod = (await import(path)) as TaskModule;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(path.slice(2, -3))) {
      throw new KestrelError('E_UNSUPPORTED', `pipeline "${task}" is not available in this build of Kestrel`);
    }
    throw e;
  }
  const { inProcess, workers, ...taskOptions } = (options ?? {}) as Record<string, unknown>;
  // a remote model is an HTTP client: nothing heavy to move off this thread
  if (remote) {
    if (workers !== undefined && workers !== 1) throw new KestrelError('E_OPTIONS', 'workers applies to local models; a remote model (openai:URL) runs on its server');
    return mod.createPipeline(task, taskOptions);
  }
  const rt = parseOptions(RuntimeOptionsSchema, { ...(inProcess !== undefined ? { inProcess } : {}), ...(workers !== undefined ? { workers } : {}) }, `${task} options`);
  const sendable = { ...taskOptions };
  delete sendable.onProgress; // a listener stays here; the worker forwards its load events to it
  // a model already loaded on this thread (e.g. a VisionLanguageModel shared between pipelines) stays here
  const here = rt.inProcess || !cloneable(sendable);
  if (here && rt.workers > 1) throw new KestrelError('E_OPTIONS', `workers: ${rt.workers} needs options a worker can receive (a model path, not a loaded model) and inProcess false`);
  if (here) {
    const p = await mod.createPipeline(task, taskOptions);
    // every pipeline can be disposed, wherever its model runs (the QC models hold nothing to release here)
    if (typeof p === 'function' && !('dispose' in p)) Object.defineProperty(p, 'dispose', { value: async () => undefined });
    return p;
  }
  return createWorkerPipeline(task, taskOptions, rt.workers);
}
