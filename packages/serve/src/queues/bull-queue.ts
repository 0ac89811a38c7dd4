import { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { KestrelError, type KestrelErrorCode } from '@kestrel/core';
import type { InspectionRecord } from '../records.js';
import type { InspectionJob, InspectionJobQueue } from '../scale-out.js';
import { QueueError } from '../work-queue.js';
import { DEFAULT_QUEUE_NAME, redactRedisUrl, redisConnection } from './redis.js';

/** Options of {@link BullInspectionQueue.open}. */
export interface BullQueueOptions {
  /** `redis://host:port[/db]`. */
  url: string;
  /** Jobs waiting at most across all frontends; more are refused (429). */
  maxQueued: number;
  /** Queue name (default `kestrel-inspect`). */
  name?: string | undefined;
}

/** `p`, or E_BACKEND_UNAVAILABLE after `ms`. */
async function within<T>(ms: number, message: string, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => { t = setTimeout(() => rej(new KestrelError('E_BACKEND_UNAVAILABLE', `${message}; retry with the same Idempotency-Key`)), Math.max(1, ms)); })]);
  } finally {
    clearTimeout(t);
  }
}

const KESTREL_CODES: ReadonlySet<string> = new Set<KestrelErrorCode>(['E_CHECKPOINT_FORMAT', 'E_IMAGE_DECODE', 'E_IMAGE_TOO_LARGE', 'E_IMAGE_TOKENS', 'E_OPTIONS',
  'E_MODEL_NOT_FOUND', 'E_COCO_FORMAT', 'E_BACKEND_UNAVAILABLE', 'E_DATA_FORMAT', 'E_IO', 'E_ABORTED', 'E_UNSUPPORTED', 'E_INTERNAL']);

/**
 * A worker's failure travels as "CODE: message" in BullMQ's failedReason; turn it back into the error
 * the server maps to a status: a KestrelError with its code, or a QueueError('timeout') (503 E_TIMEOUT).
 */
export function errorFromFailedReason(reason: string): KestrelError | QueueError {
  const m = /^(E_[A-Z_]+): ([\s\S]*)$/.exec(reason);
  if (m && m[1] === 'E_TIMEOUT') return new QueueError('timeout', m[2]!);
  if (m && KESTREL_CODES.has(m[1]!)) return new KestrelError(m[1] as KestrelErrorCode, m[2]!);
  if (/timed out before finishing/.test(reason)) return new QueueError('timeout', 'no worker finished the inspection in time; retry with the same Idempotency-Key');
  return new KestrelError('E_BACKEND_UNAVAILABLE', `the worker failed: ${reason}`);
}

/**
 * The frontend's side of the shared BullMQ queue on Redis: `add` enqueues with job id = inspection id
 * (a repeated add of one id is a no-op), `result` waits for the completion event of the worker that
 * committed the row. Completed jobs (their image already dropped by the worker) are kept an hour so a
 * late waiter still finds the result.
 */
export class BullInspectionQueue implements InspectionJobQueue {
  private constructor(
    readonly queue: Queue,
    private readonly events: QueueEvents,
    private readonly conns: Redis[],
    readonly maxQueued: number,
    readonly url: string,
  ) {}

  /** Connect to Redis; an unreachable server is E_BACKEND_UNAVAILABLE. */
  static async open(o: BullQueueOptions): Promise<BullInspectionQueue> {
    const name = o.name ?? DEFAULT_QUEUE_NAME;
    const c1 = redisConnection(o.url), c2 = redisConnection(o.url);
    const queue = new Queue(name, { connection: c1 });
    const events = new QueueEvents(name, { connection: c2 });
    queue.on('error', () => undefined);
    events.on('error', () => undefined);
    try {
      await Promise.race([
        Promise.all([queue.waitUntilReady(), events.waitUntilReady()]),
        new Promise((_, rej) => setTimeout(() => rej(new Error('no answer in 10 s')), 10_000).unref()),
        // A refused connection at start is a wrong URL or a stopped server: say so now, not after 10 s.
        new Promise((_, rej) => c1.once('error', rej)),
      ]);
    } catch (e) {
      // Disconnect first: close() on a connection that never came up would wait for it.
      c1.disconnect(); c2.disconnect();
      void queue.close().catch(() => undefined);
      void events.close().catch(() => undefined);
      throw new KestrelError('E_BACKEND_UNAVAILABLE', `cannot use Redis at ${redactRedisUrl(o.url)}: ${(e as Error).message}; check --queue and that redis-server is running`, { cause: e });
    }
    return new BullInspectionQueue(queue, events, [c1, c2], o.maxQueued, o.url);
  }

  async depth(): Promise<number> {
    return this.queue.getWaitingCount();
  }

  async add(job: InspectionJob): Promise<void> {
    // While Redis is down ioredis holds commands until it reconnects; the request's deadline bounds that wait.
    await within(job.startBy - Date.now(), `Redis at ${redactRedisUrl(this.url)} did not answer before the request deadline`, (async () => {
      if ((await this.depth()) >= this.maxQueued) throw new QueueError('full', `work queue full (${this.maxQueued} waiting); retry later`);
      await this.queue.add('inspect', job, {
        jobId: job.id,
        attempts: 1,
        removeOnComplete: { age: 3600, count: 100_000 },
        // Failed jobs keep their image (for a look at why); keep only the latest few hundred.
        removeOnFail: { age: 3600, count: 500 },
      });
    })());
  }

  async result(id: string, wait: { startBy: number; runMs: number }): Promise<InspectionRecord> {
    const job = await within(wait.runMs, `Redis at ${redactRedisUrl(this.url)} did not answer`, Job.fromId(this.queue, id));
    if (!job) throw new KestrelError('E_BACKEND_UNAVAILABLE', `job ${id} is not in the queue (Redis restarted without its data?); retry with the same Idempotency-Key`);
    let startTimer: NodeJS.Timeout | undefined;
    // At the start deadline a job no worker has taken is removed (remove() refuses a locked, running
    // job, which is then waited for): the client gets 503 E_TIMEOUT as on one machine.
    const notStarted = new Promise<never>((_, reject) => {
      startTimer = setTimeout(() => {
        void (async () => {
          const state = await job.getState().catch(() => 'unknown');
          if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return;
          // Waiting again after a stall (its worker died mid-job): it was started, so it is never dropped.
          const now = await Job.fromId(this.queue, id).catch(() => undefined);
          if (!now || now.attemptsStarted > 0) return;
          try {
            await now.remove();
            reject(new QueueError('timeout', `no worker started the inspection within the request deadline`));
          } catch { /* taken by a worker meanwhile: wait for it */ }
        })();
      }, Math.max(0, wait.startBy - Date.now()));
    });
    try {
      return (await Promise.race([job.waitUntilFinished(this.events, Math.max(0, wait.startBy - Date.now()) + wait.runMs), notStarted])) as InspectionRecord;
    } catch (e) {
      if (e instanceof QueueError) throw e;
      throw errorFromFailedReason((e as Error).message);
    } finally {
      clearTimeout(startTimer);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.events.close(), this.queue.close()]);
    for (const c of this.conns) c.disconnect();
  }
}
