import { existsSync, rmSync } from 'node:fs';
import { KestrelError, parseOptions } from '@kestrel/core';
import { hashKey, parseApiKeyFlag } from '../auth.js';
import { createVlmChatBackend } from '../chat-route.js';
import { ServeConfigSchema, loadServeConfigFile } from '../config.js';
import { BullInspectionQueue } from '../queues/bull-queue.js';
import { startInspectionWorker, type InspectionWorker } from '../queues/bull-worker.js';
import { isRedisUrl, redactRedisUrl } from '../queues/redis.js';
import { isPostgresUrl, openStore } from '../stores/open-store.js';
import { runWorkerRole } from './worker-role.js';
import { createInspector, readRules } from '../inspectors.js';
import { createServer } from '../server.js';
import { runUntilSignal, type CliContext } from './context.js';

function num(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${flag} needs a number`);
  return n;
}

/**
 * `kestrel serve` after flag parsing: build the config (file, then flags), open the log, load the
 * inspector, listen, and drain on SIGTERM/SIGINT. Resolves to the exit code once stopped.
 */
export async function runServeCommand(ctx: CliContext): Promise<number> {
  const v = ctx.values;
  if (typeof v['hash-key'] === 'string') { ctx.out.write(hashKey(v['hash-key']) + '\n'); return 0; }
  const base = typeof v.config === 'string' ? loadServeConfigFile(v.config) : {};
  const flagKeys = ((v['api-key'] as string[] | undefined) ?? []).map((k, i) => parseApiKeyFlag(k, i));
  // --queue is a bound (a number) or the shared queue's redis:// URL.
  const queueUrl = typeof v.queue === 'string' && isRedisUrl(v.queue) ? v.queue : undefined;
  let n: Record<string, number | undefined>;
  try {
    n = { port: num(v.port, '--port'), queue: queueUrl ? undefined : num(v.queue, '--queue'), concurrency: num(v.concurrency, '--concurrency'), bodyLimit: num(v['body-limit'], '--body-limit'), timeout: num(v.timeout, '--timeout'), workers: num(v.workers, '--workers') };
  } catch (e) {
    throw new KestrelError('E_OPTIONS', (e as Error).message);
  }
  const merged = {
    ...base,
    ...(typeof v.host === 'string' ? { host: v.host } : {}),
    ...(n.port !== undefined ? { port: n.port } : {}),
    ...(typeof v.db === 'string' ? { db: v.db } : {}),
    ...(typeof v.store === 'string' ? { db: v.store } : {}),
    ...(typeof v.role === 'string' ? { role: v.role } : {}),
    ...(typeof v.model === 'string' ? { model: v.model } : {}),
    ...(typeof v.vlm === 'string' ? { vlm: v.vlm } : {}),
    ...(typeof v.pipeline === 'string' ? { pipeline: v.pipeline } : {}),
    ...(typeof v.rules === 'string' ? { rules: readRules(v.rules) } : {}),
    ...(typeof v['archive-ng'] === 'string' ? { archiveNgDir: v['archive-ng'] } : {}),
    ...(n.bodyLimit !== undefined ? { bodyLimitBytes: n.bodyLimit } : {}),
    ...(n.timeout !== undefined ? { requestTimeoutMs: n.timeout } : {}),
    ...(n.workers !== undefined ? { workers: n.workers } : {}),
    // N workers run N inspections at once unless --concurrency says otherwise
    queue: { ...(base.queue ?? {}), ...(n.queue !== undefined ? { maxQueued: n.queue } : {}), ...(queueUrl ? { url: queueUrl } : {}), ...(n.concurrency !== undefined ? { concurrency: n.concurrency } : n.workers !== undefined && base.queue?.concurrency === undefined ? { concurrency: n.workers } : {}) },
    apiKeys: [...(base.apiKeys ?? []), ...flagKeys],
  };
  const config = parseOptions(ServeConfigSchema, merged, 'serve options');
  if (config.apiKeys.length === 0) throw new KestrelError('E_OPTIONS', 'give at least one --api-key (or apiKeys in --config): every inspection request must carry a key');
  if (config.role !== 'all' && !config.queue.url) throw new KestrelError('E_OPTIONS', `--role ${config.role} needs a shared queue: --queue redis://HOST:PORT`);
  if (config.role !== 'frontend' && !config.model && !config.vlm) throw new KestrelError('E_OPTIONS', 'give --model NAME_OR_DIR (e.g. anomaly-magnetic-tile) and/or --vlm DIR');
  if (config.role === 'worker' && !config.model) throw new KestrelError('E_OPTIONS', '--role worker runs inspections: give --model NAME_OR_DIR');
  if (config.queue.url && config.role !== 'frontend' && !isPostgresUrl(config.db)) ctx.err.write('kestrel serve: note: workers on other machines need a shared store: --store postgres://...\n');

  const inspector = config.model && config.role !== 'frontend' ? await createInspector({ pipeline: config.pipeline, model: config.model, rules: config.rules, workers: config.workers }) : undefined;
  if (config.role === 'worker') return runWorkerRole(ctx, config, inspector!);
  const chat = config.vlm ? await createVlmChatBackend(config.vlm) : undefined;
  // a DB this run creates is removed again if the server never starts (a bad --host, a port in use)
  const newDb = !isPostgresUrl(config.db) && config.db !== ':memory:' && !existsSync(config.db);
  const log = await openStore(config.db);
  let jobs: BullInspectionQueue | undefined, worker: InspectionWorker | undefined;
  try {
    jobs = config.queue.url ? await BullInspectionQueue.open({ url: config.queue.url, maxQueued: config.queue.maxQueued }) : undefined;
    // role all with a shared queue: this process is a frontend and a worker.
    worker = jobs && inspector ? await startInspectionWorker({ url: config.queue.url!, inspector, store: log, concurrency: config.queue.concurrency, archiveNgDir: config.archiveNgDir }) : undefined;
  } catch (e) {
    await jobs?.close();
    await log.close();
    throw e;
  }
  // With a shared queue the inspector here only warms up and names the model in /healthz; jobs run on the worker.
  const server = await createServer({ config, log, inspector, chat, jobs });
  const warm = await server.warmUp();
  if (warm.length && !ctx.json) ctx.err.write(`kestrel serve: model warmed up (${warm.map((t) => t.toFixed(0)).join(', ')} ms)\n`);
  let url: string;
  try {
    url = await server.listen();
  } catch (e) {
    await worker?.close();
    await log.close();
    if (newDb) for (const f of [config.db, `${config.db}-wal`, `${config.db}-shm`, `${config.db}-journal`]) rmSync(f, { force: true });
    throw new KestrelError('E_IO', `cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`, { cause: e });
  }
  ctx.out.write(JSON.stringify({ event: 'listening', url, pid: process.pid, db: log.file, model: inspector?.model ?? null, chat: chat?.name ?? null, role: config.role, queue: config.queue.url ? redactRedisUrl(config.queue.url) : null }) + '\n');
  if (!ctx.json) ctx.err.write(`kestrel serve: listening on ${url} (log ${log.file})\n`);

  return runUntilSignal(ctx, 'draining in-flight requests', async () => {
    // The worker finishes its jobs first (their rows are committed), then the server drains and closes the store.
    await worker?.close();
    await server.close();
    return 'stopped';
  });
}
