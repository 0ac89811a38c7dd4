import { EventEmitter } from 'node:events';

/** One progress update from long work (loading, training, benchmarks). */
export interface ProgressEvent {
  /** What is running, e.g. "load weights", "evaluate". */
  task: string;
  /** Units done so far. */
  done: number;
  /** Total units, when known. */
  total?: number;
  /** Optional free-text detail. */
  message?: string;
}

/** A callback that receives progress events. */
export type ProgressListener = (e: ProgressEvent) => void;

/**
 * Process-wide progress bus: libraries emit, the CLI renders a bar on a TTY's stderr. Functions that do
 * long work also accept an `onProgress` option, which receives the same events.
 */
export const progress = new EventEmitter();

/** Emit a progress event on the bus and to an optional per-call listener. */
export function reportProgress(e: ProgressEvent, listener?: ProgressListener): void {
  listener?.(e);
  progress.emit('progress', e);
}

/** Listen to every progress event; returns an unsubscribe function. */
export function onProgress(listener: ProgressListener): () => void {
  progress.on('progress', listener);
  return () => progress.off('progress', listener);
}
