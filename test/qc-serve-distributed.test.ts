// kestrel serve on several machines, in one process: a frontend (createServer with a BullMQ queue on
// Redis) and workers (startInspectionWorker) sharing a PostgreSQL store (SQLite when no PostgreSQL is
// given). Needs KESTREL_TEST_REDIS_URL; .ci/run starts Redis and PostgreSQL and sets both.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { parseApiKeyFlag } from '../packages/serve/src/auth.js';
import type { ServeConfigInput } from '../packages/serve/src/config.js';
import type { Inspector, InspectionResult } from '../packages/serve/src/inspector.js';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { BullInspectionQueue } from '../packages/serve/src/queues/bull-queue.js';
import { startInspectionWorker } from '../packages/serve/src/queues/bull-worker.js';
import type { InspectionStore } from '../packages/serve/src/scale-out.js';
import { createServer } from '../packages/serve/src/server.js';
import { PostgresStore } from '../packages/serve/src/stores/postgres-store.js';
import { FakeBrightnessInspectorForTests } from './helpers/qc-fake-inspector.js';
import { PG_URL, REDIS_SKIP, REDIS_URL, freshPgDatabase, sayWhySkipped } from './helpers/qc-services.js';

const FIX = resolve(import.meta.dirname, 'fixtures/qc-serve');
const IMAGES = readdirSync(FIX).filter((f) => f.endsWith('.jpg')).sort().map((f) => readFileSync(join(FIX, f)));
const KEY = 'test-key-distributed-0123';
const AUTH = { authorization: `Bearer ${KEY}` };
sayWhySkipped('distributed kestrel serve (BullMQ on Redis)', REDIS_SKIP);

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A fresh store: a PostgreSQL database when the tests have one, else a SQLite file. */
async function store(): Promise<InspectionStore> {
  if (PG_URL) {
    const db = await freshPgDatabase();
    const s = await PostgresStore.open(db.url);
    cleanups.push(() => db.drop());
    cleanups.push(() => s.close());
    return s;
  }
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-dist-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const s = InspectionLog.open(join(dir, 'log.db'));
  cleanups.push(() => s.close());
  return s;
}

async function frontend(log: InspectionStore, name: string, config: Partial<ServeConfigInput> = {}) {
  const jobs = await BullInspectionQueue.open({ url: REDIS_URL!, maxQueued: config.queue?.maxQueued ?? 64, name });
  const s = await createServer({ config: { port: 0, apiKeys: [parseApiKeyFlag(KEY, 0)], ...config }, log, jobs });
  cleanups.push(async () => { await s.close(); await jobs.queue.obliterate({ force: true }).catch(() => undefined); });
  return Object.assign(s, { jobs });
}

const post = (s: Awaited<ReturnType<typeof frontend>>, img: Buffer, partId: string, key?: string) =>
  s.app.inject({ method: 'POST', url: `/v1/inspect?station=line-1&partId=${partId}`, headers: { ...AUTH, 'content-type': 'image/jpeg', ...(key ? { 'idempotency-key': key } : {}) }, payload: img });

describe.skipIf(REDIS_SKIP)('frontend + workers on a BullMQ queue', () => {
  it('each answer is the row a worker committed; a retried key is answered from the store; two workers share the jobs', async () => {
    const name = `t-${randomBytes(4).toString('hex')}`;
    const log = await store();
    const s = await frontend(log, name);
    const inspA = new FakeBrightnessInspectorForTests(0.27, 100), inspB = new FakeBrightnessInspectorForTests(0.27, 100);
    const wA = await startInspectionWorker({ url: REDIS_URL!, inspector: inspA, store: log, name });
    const wB = await startInspectionWorker({ url: REDIS_URL!, inspector: inspB, store: log, name });
    cleanups.push(() => wA.close(), () => wB.close());
    const parts = Array.from({ length: 8 }, (_, i) => IMAGES[i % IMAGES.length]!);
    const answers = await Promise.all(parts.map((img, i) => post(s, img, `P-${i}`, `k-${name}-${i}`)));
    const direct = new FakeBrightnessInspectorForTests(0.27);
    for (let i = 0; i < answers.length; i++) {
      const a = answers[i]!;
      expect(a.statusCode).toBe(200);
      const body = a.json();
      const want = await direct.inspect(parts[i]!);
      expect({ verdict: body.verdict, score: body.score, partId: body.partId }).toEqual({ verdict: want.verdict, score: want.score, partId: `P-${i}` });
      const row = await log.get(body.id);
      expect(row).toMatchObject({ id: body.id, verdict: body.verdict, score: body.score, station: 'line-1', requestKey: `k-${name}-${i}`, model: { name: 'fake-brightness-test-only' } });
    }
    expect(await log.count()).toBe(8);
    // Both workers took jobs (each job sleeps 100 ms, eight arrive at once).
    expect(inspA.calls).toBeGreaterThan(0);
    expect(inspB.calls).toBeGreaterThan(0);
    expect(inspA.calls + inspB.calls).toBe(8);
    // Completed jobs stay in Redis for late waiters, without their image.
    const kept = await s.jobs.queue.getJob(answers[0]!.json().id);
    expect(kept?.data.image).toBe('');
    expect(kept?.returnvalue.id).toBe(answers[0]!.json().id);
    const again = await post(s, parts[3]!, 'P-3', `k-${name}-3`);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().id).toBe(answers[3]!.json().id);
    expect(await log.count()).toBe(8);
  });

  it('a bounded shared queue answers 429, and a job no worker starts in time is 503 E_TIMEOUT, never logged', async () => {
    const name = `t-${randomBytes(4).toString('hex')}`;
    const log = await store();
    // No worker at all: two jobs fill the queue, the third is refused at once.
    const s = await frontend(log, name, { queue: { maxQueued: 2 }, requestTimeoutMs: 3000 });
    const t0 = Date.now();
    const first = [post(s, IMAGES[0]!, 'A'), post(s, IMAGES[1]!, 'B')];
    while ((await s.jobs.depth()) < 2 && Date.now() - t0 < 2500) await new Promise((r) => setTimeout(r, 20));
    const third = await post(s, IMAGES[2]!, 'C');
    expect(third.statusCode).toBe(429);
    expect(third.json().error.code).toBe('E_QUEUE_FULL');
    expect(third.headers['retry-after']).toBe('1');
    const late = await Promise.all(first);
    expect(late.map((r) => [r.statusCode, r.json().error.code])).toEqual([[503, 'E_TIMEOUT'], [503, 'E_TIMEOUT']]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    // A worker that starts now finds nothing left to run.
    const insp = new FakeBrightnessInspectorForTests(0.27);
    const w = await startInspectionWorker({ url: REDIS_URL!, inspector: insp, store: log, name });
    cleanups.push(() => w.close());
    await new Promise((r) => setTimeout(r, 500));
    expect(insp.calls).toBe(0);
    expect(await log.count()).toBe(0);
  });

  it('a worker that dies mid-job: the stalled job runs again on another worker and is logged once', async () => {
    const name = `t-${randomBytes(4).toString('hex')}`;
    const log = await store();
    const s = await frontend(log, name, { requestTimeoutMs: 1500 });
    // Worker A takes the job and hangs; its lock is not renewed after the forced close (as after kill -9).
    let releaseA!: (r: InspectionResult) => void;
    let startedA!: () => void;
    const aStarted = new Promise<void>((r) => { startedA = r; });
    const hung: Inspector = { model: { name: 'fake-brightness-test-only', version: 'test' }, inspect: () => { startedA(); return new Promise((r) => { releaseA = r; }); } };
    const wA = await startInspectionWorker({ url: REDIS_URL!, inspector: hung, store: log, name, lockDurationMs: 1000 });
    const sentAt = Date.now();
    let answered = false;
    const answer = post(s, IMAGES[0]!, 'P-stall').then((r) => { answered = true; return r; });
    await aStarted;
    const killed = wA.close(true);
    // BullMQ's stalled check (run here by a worker that takes no jobs) moves the job back to waiting
    // once A's lock lapses; it then waits past the request's start deadline (1.5 s) with no worker.
    const conn = new Redis(REDIS_URL!, { maxRetriesPerRequest: null });
    const checker = new Worker(name, null, { connection: conn, autorun: false, stalledInterval: 200, lockDuration: 1000, maxStalledCount: 3 });
    await checker.startStalledCheckTimer();
    const state = async (): Promise<string> => (await s.jobs.queue.getJobs(['waiting', 'active']).then((j) => j[0]?.getState())) ?? 'none';
    while ((await state()) !== 'waiting' && Date.now() - sentAt < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(await state()).toBe('waiting');
    while (Date.now() - sentAt < 2500) await new Promise((r) => setTimeout(r, 50));
    await checker.close();
    conn.disconnect();
    // A job that was started is never dropped at the start deadline: still waiting, not answered 503.
    expect(answered).toBe(false);
    expect(await state()).toBe('waiting');
    // Worker B takes the job again and runs it to the end.
    const insp = new FakeBrightnessInspectorForTests(0.27);
    const wB = await startInspectionWorker({ url: REDIS_URL!, inspector: insp, store: log, name, lockDurationMs: 1000 });
    cleanups.push(() => wB.close());
    const a = await answer;
    expect(a.statusCode).toBe(200);
    expect(insp.calls).toBe(1);
    // A's late result would commit the same id: still one row.
    releaseA({ verdict: 'OK', score: 0, threshold: 0.27, defects: [] });
    await killed;
    await new Promise((r) => setTimeout(r, 200));
    expect(await log.count()).toBe(1);
    expect((await log.get(a.json().id))!.score).toBe(a.json().score);
  });
});

describe('kestrel serve --role / --queue / --store flags', () => {
  it('a role without a shared queue, a worker without a model, and an unreachable Redis or PostgreSQL are clear errors', async () => {
    const { commands } = await import('../packages/cli/src/commands/serve.js');
    const serve = commands[0]!;
    const ctx = (values: Record<string, string | string[] | boolean>) => ({
      values: { 'api-key': ['some-long-key-1'], ...values }, positionals: [], json: false, debug: false,
      out: { write: () => true } as unknown as NodeJS.WritableStream,
      err: { write: () => true } as unknown as NodeJS.WritableStream,
    });
    await expect(serve.run(ctx({ role: 'worker', model: 'x' }))).rejects.toMatchObject({ code: 'E_OPTIONS', message: expect.stringMatching(/--queue redis:\/\//) });
    await expect(serve.run(ctx({ role: 'worker', queue: 'redis://127.0.0.1:1' }))).rejects.toMatchObject({ code: 'E_OPTIONS', message: expect.stringMatching(/--model/) });
    await expect(serve.run(ctx({ role: 'boss', queue: 'redis://127.0.0.1:1' }))).rejects.toMatchObject({ code: 'E_OPTIONS' });
    // A frontend needs no model; its store and queue must answer.
    await expect(serve.run(ctx({ role: 'frontend', queue: 'redis://127.0.0.1:1', store: 'postgres://u:pw@127.0.0.1:1/db' })))
      .rejects.toMatchObject({ code: 'E_BACKEND_UNAVAILABLE', message: expect.not.stringContaining(':pw@') });
  });

  it.skipIf(!PG_URL)('a frontend with a reachable store and an unreachable Redis is E_BACKEND_UNAVAILABLE naming --queue', async () => {
    const { commands } = await import('../packages/cli/src/commands/serve.js');
    const serve = commands[0]!;
    const db = await freshPgDatabase();
    cleanups.push(() => db.drop());
    const values = { 'api-key': ['some-long-key-1'], role: 'frontend', queue: 'redis://127.0.0.1:1', store: db.url };
    await expect(serve.run({ values, positionals: [], json: false, debug: false, out: { write: () => true } as unknown as NodeJS.WritableStream, err: { write: () => true } as unknown as NodeJS.WritableStream }))
      .rejects.toMatchObject({ code: 'E_BACKEND_UNAVAILABLE', message: expect.stringMatching(/--queue/) });
  }, 30_000);
});
