import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { KestrelError } from '../errors.js';
import { serializeError, type AbortMessage, type CallMessage, type FromWorkerInit, type ToWorker } from './protocol.js';

/** What a handler gets besides its arguments. */
export interface CallContext {
  /** aborted when the caller's AbortSignal fires (checked at every `emit` and whenever the worker's loop runs) */
  readonly signal: AbortSignal;
  /** send one event (e.g. a token) to the caller; `transfer` moves buffers instead of copying them */
  emit(data: unknown, transfer?: readonly TransferListItem[]): void;
  /** mark buffers of the result to move instead of copy */
  transferResult(list: readonly TransferListItem[]): void;
}

/** Methods a worker serves: each takes the call's arguments and a {@link CallContext}. */
export type WorkerHandlers = Record<string, (args: never, ctx: CallContext) => unknown>;

/** What `init` returns: the handlers, and optional plain `info` sent back to the caller once ready. */
export interface WorkerSetup { handlers: WorkerHandlers; info?: unknown; close?: () => unknown }

/**
 * Worker-thread side of the protocol: run `init(workerData.init)` (load the model here, in the worker),
 * then serve calls until the caller closes it. Calls run concurrently; a handler that never yields
 * (a long native call) holds only this worker's thread, never the caller's.
 */
export function serveWorker(init: (data: unknown) => Promise<WorkerSetup> | WorkerSetup): void {
  const port = parentPort;
  if (!port) throw new KestrelError('E_INTERNAL', 'serveWorker must run inside a worker thread');
  const wd = workerData as { init?: unknown; nice?: number } | null;
  const data = wd?.init;
  if (wd?.nice) lowerThreadPriority(wd.nice);
  void (async () => {
    let setup: WorkerSetup;
    try {
      setup = await init(data);
    } catch (e) {
      port.postMessage({ type: 'init-error', error: serializeError(e) } satisfies FromWorkerInit);
      return;
    }
    port.on('message', (m: ToWorker) => {
      if (m.type === 'close') {
        void Promise.resolve().then(() => setup.close?.()).finally(() => port.close());
        return;
      }
      if (m.type === 'call') void runCall(setup.handlers, m.method, m.args, m.port);
    });
    port.postMessage({ type: 'ready', info: setup.info ?? null } satisfies FromWorkerInit);
  })();
}

async function runCall(handlers: WorkerHandlers, method: string, args: unknown, callPort: MessagePort): Promise<void> {
  const ac = new AbortController();
  const onMsg = (m: AbortMessage): void => { if (m?.type === 'abort') ac.abort(); };
  callPort.on('message', onMsg);
  // an abort that arrives while the handler holds the thread is seen at the next emit
  const poll = (): void => {
    for (let r = receiveMessageOnPort(callPort); r; r = receiveMessageOnPort(callPort)) onMsg(r.message as AbortMessage);
  };
  let resultTransfer: readonly TransferListItem[] = [];
  const ctx: CallContext = {
    signal: ac.signal,
    emit(d, transfer) {
      callPort.postMessage({ type: 'event', data: d } satisfies CallMessage, transfer ? [...transfer] : []);
      poll();
    },
    transferResult(list) { resultTransfer = list; },
  };
  try {
    const h = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
    if (!h) throw new KestrelError('E_UNSUPPORTED', `the model worker has no method "${method}"`);
    const value = await h(args as never, ctx);
    callPort.postMessage({ type: 'result', value } satisfies CallMessage, [...resultTransfer]);
  } catch (e) {
    try {
      callPort.postMessage({ type: 'error', error: serializeError(e) } satisfies CallMessage);
    } catch (e2) {
      callPort.postMessage({ type: 'error', error: serializeError(e2) } satisfies CallMessage);
    }
  } finally {
    callPort.off('message', onMsg);
    callPort.close();
  }
}

/**
 * Lower this worker thread's CPU priority (Linux: a thread's nice value is its own, and the native
 * threads it starts inherit it), so the caller's event loop wins the core whenever both are runnable.
 * Best effort: elsewhere, or without /proc, the worker keeps the caller's priority.
 */
function lowerThreadPriority(by: number): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + by));
  } catch { /* not Linux, or not permitted: keep the priority */ }
}
