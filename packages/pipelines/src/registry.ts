import { KestrelError } from '@kestrel/core';
import { isRemoteModel } from './remote/options.js';

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

/** Every task a Kestrel build knows about, and the module that implements it (loaded lazily). */
const TASK_MODULES: Record<string, string> = {
  detect: './detect/index.js',
  segment: './detect/index.js',
  xray: './xray/index.js',
  defects: './defects/index.js',
  ask: './vlm/pipelines.js',
  caption: './vlm/pipelines.js',
  ground: './vlm/ground.js',
  chat: './vlm/pipelines.js',
};

/** Tasks that also run on a remote OpenAI-compatible server (`model: 'openai:URL'`). */
const REMOTE_TASKS = new Set(['ask', 'caption', 'chat']);

/** A task module exports `createPipeline(task, options)`. */
export interface TaskModule {
  createPipeline(task: string, options: unknown): Promise<unknown>;
}

/** Task names this build knows about. */
export function pipelineTasks(): string[] {
  return Object.keys(TASK_MODULES);
}

/**
 * Create a pipeline for a task. The model and its runtime are loaded here, once; the returned function
 * runs the task on inputs.
 *
 * @example
 * const detect = await pipeline('detect', { model: 'centernet' });
 * const [boxes] = await detect(['street.jpg']);
 */
export async function pipeline<T extends keyof PipelineTasks>(
  task: T,
  options: PipelineTasks[T] extends { options: infer O } ? O : never,
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
  return mod.createPipeline(task, options ?? {});
}
