import { availableParallelism } from 'node:os';
import { KestrelError } from '../errors.js';
import { WorkerClient, type CallOptions, type WorkerSpec } from './client.js';

/**
 * Cores the model workers share: all but one, which the caller's event loop keeps. Measured on the
 * 2-core machine (perf-anchor generate, 512 + 32 tokens, in a worker): 2 native threads left the
 * caller's 10 ms timer up to 55 ms late, 1 thread 4 ms, and the call was no slower (4.0 vs 3.8 s).
 */
export function modelCores(): number {
  const c = availableParallelism();
  return c > 1 ? c - 1 : 1;
}

/**
 * Native kernel threads for each of `workers` model workers so that workers × threads never exceeds
 * `cores` (default {@link modelCores}: every core but the caller's); at least one thread each.
 */
export function threadsPerWorker(workers: number, cores: number = modelCores()): number {
  if (!Number.isInteger(workers) || workers < 1) throw new KestrelError('E_OPTIONS', `workers must be a positive integer (got ${workers})`);
  return Math.max(1, Math.floor(cores / workers));
}

/**
 * N identical model workers, each with its own copy of the model; a call goes to the worker with the
 * fewest calls in flight. A worker that dies fails only its own calls and is replaced.
 */
export class WorkerPool {
  readonly clients: WorkerClient[];

  /** `spec(i)` describes worker i (the same model, its own thread count). */
  constructor(size: number, spec: (index: number) => WorkerSpec) {
    if (!Number.isInteger(size) || size < 1) throw new KestrelError('E_OPTIONS', `workers must be a positive integer (got ${size})`);
    this.clients = Array.from({ length: size }, (_, i) => new WorkerClient(spec(i)));
  }

  get size(): number { return this.clients.length; }

  /** Start every worker and wait until each has loaded its model; returns the first worker's info. */
  async start(): Promise<unknown> {
    const results = await Promise.allSettled(this.clients.map((c) => c.start()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.close();
      throw failed.reason;
    }
    return (results[0] as PromiseFulfilledResult<unknown>).value;
  }

  /** Total restarts of crashed workers. */
  get restarts(): number { return this.clients.reduce((s, c) => s + c.restarts, 0); }

  /** Calls in flight over all workers. */
  get inFlight(): number { return this.clients.reduce((s, c) => s + c.inFlight, 0); }

  call<R>(method: string, args: unknown, options?: CallOptions): Promise<R> {
    let best = this.clients[0]!;
    for (const c of this.clients) if (c.inFlight < best.inFlight) best = c;
    return best.call<R>(method, args, options);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}
