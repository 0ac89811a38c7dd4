import { hostname } from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { KestrelError, isKestrelError } from '@kestrel/core';
import { extensionFor, writeFileAtomic } from '../archive.js';
import type { Inspector } from '../inspector.js';
import type { InspectionRecord } from '../records.js';
import type { InspectionJob, InspectionStore } from '../scale-out.js';
import { DEFAULT_QUEUE_NAME, redactRedisUrl, redisConnection } from './redis.js';

/** Options of {@link startInspectionWorker}. */
export interface InspectionWorkerOptions {
  /** `redis://host:port[/db]`, the frontends' `--queue`. */
  url: string;
  inspector: Inspector;
  /** Where rows are committed (PostgreSQL for several machines). */
  store: InspectionStore;
  /** Jobs this process runs at once (default 1). */
  concurrency?: number | undefined;
  /** Copy NG images here, as the single-machine server does. */
  archiveNgDir?: string | undefined;
  name?: string | undefined;
  /**
   * A job's lock lives this long without renewal (default 5000 ms): a killed worker's job is taken up
   * again by another worker within about 1.5× this.
   */
  lockDurationMs?: number | undefined;
}

/** A running worker. */
export interface InspectionWorker {
  /** Jobs finished by this process. */
  readonly done: number;
  /**
   * Finish the jobs in hand, then disconnect. `force`: stop at once without finishing them (their
   * locks lapse and other workers run them again, as after a crash).
   */
  close(force?: boolean): Promise<void>;
}

/**
 * Run inspections from the shared queue: each job is inspected, its row committed to the store, and
 * only then completed, so a frontend never answers an id the store lacks. A job whose worker died
 * (BullMQ's stalled-job check) runs again elsewhere; the row is keyed by the job's inspection id, so it
 * is logged once. A job that waited past its start deadline is dropped unrun (the frontend answers 503).
 */
export async function startInspectionWorker(o: InspectionWorkerOptions): Promise<InspectionWorker> {
  const me = `${hostname()}:${process.pid}`;
  const lockDuration = o.lockDurationMs ?? 5000;
  let done = 0;
  const processor = async (job: Job<InspectionJob>): Promise<InspectionRecord> => {
    const j = job.data;
    const t0 = Date.now();
    // Committed already (the last worker died between the commit and the completion): answer with it.
    const prior = await o.store.get(j.id);
    if (prior) return prior;
    // Deadline as on one machine: a job not started in time is dropped; one that was running when its
    // worker died is never abandoned (attemptsStarted counts the earlier start).
    if (job.attemptsStarted <= 1 && t0 > j.startBy) throw new UnrecoverableError(`E_TIMEOUT: not started within the request deadline (waited ${t0 - j.ts} ms)`);
    const bytes = Buffer.from(j.image, 'base64');
    const ti = performance.now();
    let r;
    try {
      r = await o.inspector.inspect(bytes);
    } catch (e) {
      // The code crosses the queue in the failure reason; the frontend rebuilds the KestrelError.
      throw new UnrecoverableError(isKestrelError(e) ? `${e.code}: ${e.message}` : `E_INTERNAL: ${(e as Error).message}`);
    }
    const inferMs = performance.now() - ti;
    let archivePath: string | null = null;
    if (r.verdict === 'NG' && o.archiveNgDir) {
      const rel = `${new Date(j.ts).toISOString().slice(0, 10)}/${j.id}.${extensionFor(j.format)}`;
      writeFileAtomic(o.archiveNgDir, rel, bytes);
      archivePath = rel;
    }
    const rec = await o.store.insert({
      id: j.id, ts: j.ts, station: j.station, partId: j.partId, source: 'http', imageSha256: j.imageSha256, imageBytes: bytes.length,
      model: o.inspector.model, score: r.score, threshold: r.threshold, verdict: r.verdict, defects: r.defects,
      timings: { queueMs: Math.max(0, t0 - j.ts), inferMs, totalMs: Date.now() - j.ts }, archivePath, requestKey: j.requestKey,
    });
    // The row is committed: drop the image from the kept job so Redis holds ids and results, not images.
    // A re-run after this point finds the row above and never needs the bytes.
    await job.updateData({ ...j, image: '' }).catch(() => undefined);
    done++;
    return rec;
  };
  const conn = redisConnection(o.url);
  const worker = new Worker<InspectionJob, InspectionRecord>(o.name ?? DEFAULT_QUEUE_NAME, processor, {
    connection: conn,
    concurrency: o.concurrency ?? 1,
    lockDuration,
    stalledInterval: Math.max(500, Math.round(lockDuration / 2)),
    // Killed twice mid-job is still recovered; a job that kills every worker fails after three.
    maxStalledCount: 3,
    name: me,
  });
  worker.on('error', () => undefined);
  try {
    await Promise.race([worker.waitUntilReady(), new Promise((_, rej) => setTimeout(() => rej(new Error('no answer in 10 s')), 10_000).unref()), new Promise((_, rej) => conn.once('error', rej))]);
  } catch (e) {
    conn.disconnect();
    void worker.close(true).catch(() => undefined);
    throw new KestrelError('E_BACKEND_UNAVAILABLE', `cannot use Redis at ${redactRedisUrl(o.url)}: ${(e as Error).message}; check --queue and that redis-server is running`, { cause: e });
  }
  return {
    get done() { return done; },
    async close(force = false) {
      await worker.close(force);
      // BullMQ leaves a connection it was given open; it would keep the process alive.
      conn.disconnect();
    },
  };
}
