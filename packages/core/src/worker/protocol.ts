import { KestrelError, type KestrelErrorCode } from '../errors.js';
import type { MessagePort } from 'node:worker_threads';

/**
 * Messages of Kestrel's worker protocol. Calls go to the worker over its parentPort; each call brings
 * its own MessagePort, on which the worker streams events and the final result back (and the caller
 * sends `abort`), so a long stream never interleaves with another call's traffic.
 */
export type ToWorker =
  | { type: 'call'; id: number; method: string; args: unknown; port: MessagePort }
  | { type: 'close' };

/** Sent once on the parentPort after the worker's `init` finished (or failed). */
export type FromWorkerInit =
  | { type: 'ready'; info: unknown }
  | { type: 'init-error'; error: SerializedError }
  | { type: 'progress'; event: unknown };

/** Sent on a call's own port. */
export type CallMessage =
  | { type: 'event'; data: unknown }
  | { type: 'result'; value: unknown }
  | { type: 'error'; error: SerializedError };

/** Sent by the caller on a call's own port. */
export interface AbortMessage { type: 'abort' }

/** An error as it crosses the thread boundary (structured clone drops class identity). */
export interface SerializedError {
  kestrel: boolean;
  code?: string;
  name: string;
  message: string;
  details?: Record<string, unknown>;
  stack?: string;
}

/** Flatten an error for postMessage; details that cannot be cloned are dropped rather than failing the reply. */
export function serializeError(e: unknown): SerializedError {
  if (e instanceof KestrelError) {
    let details: Record<string, unknown> | undefined;
    if (e.details) {
      try { details = structuredClone(e.details); } catch { details = undefined; }
    }
    return { kestrel: true, code: e.code, name: e.name, message: e.message, ...(details ? { details } : {}), ...(e.stack ? { stack: e.stack } : {}) };
  }
  if (e instanceof Error) return { kestrel: false, name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
  return { kestrel: false, name: 'Error', message: String(e) };
}

/**
 * Rebuild an error on the caller's side: a KestrelError comes back as a KestrelError with the same code,
 * message and details; anything else becomes E_INTERNAL, naming the original error.
 */
export function deserializeError(s: SerializedError): KestrelError {
  const err = s.kestrel && s.code
    ? new KestrelError(s.code as KestrelErrorCode, s.message, s.details ? { details: s.details } : undefined)
    : new KestrelError('E_INTERNAL', `the model worker failed: ${s.name}: ${s.message}`);
  // keep the worker's stack: it says where the failure happened
  if (s.stack) err.stack = `${err.name}: ${err.message}\n    (in the model worker)\n${s.stack.split('\n').slice(1).join('\n')}`;
  return err;
}
