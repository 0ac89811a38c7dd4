import { MessageChannel, Worker, type ResourceLimits, type TransferListItem } from 'node:worker_threads';
import { KestrelError } from '../errors.js';
import { deserializeError, type CallMessage, type FromWorkerInit, type ToWorker } from './protocol.js';

/** How to start one model worker. */
export interface WorkerSpec {
  /** the worker's ES module (a file URL or path to compiled JavaScript that calls `serveWorker`) */
  script: URL | string;
  /** passed to the worker's `init` (must be structured-cloneable: paths and plain options) */
  init: unknown;
  /** V8 heap limits of the worker (an exceeded limit kills only that worker: E_WORKER_CRASHED) */
  resourceLimits?: ResourceLimits;
  /** extra environment of the worker (default: a copy of the caller's) */
  env?: Record<string, string>;
  /** restart the worker after it died (default true); the restarted worker loads its model again */
  restart?: boolean;
  /**
   * Lower the worker thread's CPU priority by this many nice steps (Linux; default 5, or
   * KESTREL_WORKER_NICE), so model work yields the core to the caller's event loop; 0 keeps the
   * caller's priority (a niced worker also yields to other processes on a shared machine).
   */
  nice?: number;
  /** receives the other messages the worker posts on its parentPort while loading (e.g. progress) */
  onMessage?: (message: unknown) => void;
}

/** Options of one call. */
export interface CallOptions {
  /** stops the work inside the worker; the call rejects with E_ABORTED */
  signal?: AbortSignal;
  /** receives each event the handler emits (tokens, progress) */
  onEvent?: (data: unknown) => void;
  /** buffers in `args` to move to the worker instead of copying (e.g. encoded image bytes) */
  transfer?: readonly TransferListItem[];
}

interface Pending { reject: (e: KestrelError) => void }

const aborted = (): KestrelError => new KestrelError('E_ABORTED', 'the call was aborted');

/**
 * One model worker thread: starts it, waits until its model is loaded, sends calls, and when the thread
 * dies (crash, out of memory, native fault, `process.exit`) fails exactly the calls it held with
 * E_WORKER_CRASHED and starts a fresh worker for the next call.
 */
export class WorkerClient {
  private worker: Worker | null = null;
  private starting: Promise<Worker> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** `info` the worker's init returned (model geometry, identity), once ready */
  info: unknown = null;
  /** how many times the worker died and was replaced */
  restarts = 0;
  private active = 0;
  /** calls accepted and not yet settled, counted from the moment `call` is made (the pool's load measure) */
  get inFlight(): number { return this.active; }

  constructor(private readonly spec: WorkerSpec) {}

  /** Start the worker and wait until its model is loaded (rejects with the worker's own load error). */
  async start(): Promise<unknown> {
    await this.ensure();
    return this.info;
  }

  private ensure(): Promise<Worker> {
    if (this.closed) return Promise.reject(new KestrelError('E_OPTIONS', 'this model was disposed; load it again'));
    if (this.worker) return Promise.resolve(this.worker);
    if (!this.starting) {
      this.starting = this.spawn().finally(() => { this.starting = null; });
    }
    return this.starting;
  }

  private spawn(): Promise<Worker> {
    return new Promise<Worker>((resolve, reject) => {
      const w = new Worker(this.spec.script, {
        workerData: { init: this.spec.init, nice: this.spec.nice ?? defaultNice() },
        ...(this.spec.resourceLimits ? { resourceLimits: this.spec.resourceLimits } : {}),
        ...(this.spec.env ? { env: { ...process.env, ...this.spec.env } } : {}),
      });
      let ready = false;
      w.on('message', (m: FromWorkerInit) => {
        if (ready) return;
        if (m.type === 'ready') {
          ready = true;
          this.info = m.info;
          this.worker = w;
          // an idle loaded model does not keep the process alive (a call's own port does while it runs)
          w.unref();
          resolve(w);
        } else if (m.type === 'init-error') {
          ready = true;
          void w.terminate();
          reject(deserializeError(m.error));
        } else {
          this.spec.onMessage?.(m);
        }
      });
      const died = (why: string, cause?: unknown): void => {
        if (!ready) {
          ready = true;
          reject(new KestrelError('E_WORKER_CRASHED', `the model worker died while loading (${why}); check the model files and free memory`, cause !== undefined ? { cause } : undefined));
          return;
        }
        if (this.worker !== w) return;
        this.worker = null;
        this.failAll(why);
        if (!this.closed && this.spec.restart !== false) {
          this.restarts++;
          // replace it now, so the next request finds a loaded model; a failed reload surfaces on that request
          this.ensure().catch(() => undefined);
        }
      };
      w.on('error', (e) => died(describe(e), e));
      w.on('exit', (code) => died(`exit code ${code}`));
    });
  }

  private failAll(why: string): void {
    const then = this.closed ? 'the model was disposed' : this.spec.restart === false ? 'it is not restarted (restart: false)' : 'it has been restarted, retry the request';
    const err = (): KestrelError => new KestrelError('E_WORKER_CRASHED', `the model worker stopped (${why}) while it held this request; ${then}`, { details: { reason: why } });
    for (const [, p] of this.pending) p.reject(err());
    this.pending.clear();
  }

  /** Call `method` in the worker; resolves with its result, or rejects with its KestrelError. */
  async call<R>(method: string, args: unknown, options: CallOptions = {}): Promise<R> {
    this.active++;
    try {
      return await this.send<R>(method, args, options);
    } finally {
      this.active--;
    }
  }

  private async send<R>(method: string, args: unknown, options: CallOptions): Promise<R> {
    const { signal, onEvent, transfer } = options;
    if (signal?.aborted) throw aborted();
    const w = await this.ensure();
    if (signal?.aborted) throw aborted();
    const id = this.nextId++;
    const { port1, port2 } = new MessageChannel();
    return new Promise<R>((resolve, reject) => {
      let done = false;
      const finish = (): void => {
        done = true;
        this.pending.delete(id);
        signal?.removeEventListener('abort', onAbort);
        port1.close();
      };
      const onAbort = (): void => { if (!done) port1.postMessage({ type: 'abort' }); };
      this.pending.set(id, { reject: (e) => { if (!done) { finish(); reject(e); } } });
      signal?.addEventListener('abort', onAbort, { once: true });
      port1.on('message', (m: CallMessage) => {
        if (done) return;
        if (m.type === 'event') onEvent?.(m.data);
        else if (m.type === 'result') { finish(); resolve(m.value as R); }
        else if (m.type === 'error') { finish(); reject(deserializeError(m.error)); }
      });
      const msg: ToWorker = { type: 'call', id, method, args, port: port2 };
      try {
        w.postMessage(msg, [port2, ...(transfer ?? [])]);
      } catch (e) {
        finish();
        reject(new KestrelError('E_OPTIONS', `cannot send the arguments of ${method} to the model worker: ${(e as Error).message}`));
      }
    });
  }

  /** Finish: ask the worker to release its model and exit; calls still in flight fail with E_WORKER_CRASHED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const w = this.worker ?? (this.starting ? await this.starting.catch(() => null) : null);
    this.worker = null;
    if (!w) return;
    this.failAll('closed');
    const exited = new Promise<void>((r) => w.once('exit', () => r()));
    w.postMessage({ type: 'close' } satisfies ToWorker);
    // a worker stuck in a native call does not read its port: stop it after a grace period
    const t = setTimeout(() => void w.terminate(), 5000);
    await exited;
    clearTimeout(t);
  }

  /** Stop the worker at once (its in-flight calls fail with E_WORKER_CRASHED). */
  async terminate(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    this.failAll('terminated');
    if (w) await w.terminate();
  }
}

function defaultNice(): number {
  const n = Number(process.env.KESTREL_WORKER_NICE);
  return Number.isInteger(n) && n >= 0 && n <= 19 ? n : 5;
}

function describe(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') return 'out of memory';
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
