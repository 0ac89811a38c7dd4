import { existsSync, rmSync } from 'node:fs';
import { KestrelError, parseOptions } from '@kestrel/core';
import { hashKey, parseApiKeyFlag } from '../auth.js';
import { createVlmChatBackend } from '../chat-route.js';
import { ServeConfigSchema, loadServeConfigFile } from '../config.js';
import { InspectionLog } from '../inspection-log.js';
import { createInspector, readRules } from '../inspectors.js';
import { createServer } from '../server.js';
import type { CliContext } from './context.js';

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
  let n: Record<string, number | undefined>;
  try {
    n = { port: num(v.port, '--port'), queue: num(v.queue, '--queue'), concurrency: num(v.concurrency, '--concurrency'), bodyLimit: num(v['body-limit'], '--body-limit'), timeout: num(v.timeout, '--timeout'), workers: num(v.workers, '--workers') };
  } catch (e) {
    throw new KestrelError('E_OPTIONS', (e as Error).message);
  }
  const merged = {
    ...base,
    ...(typeof v.host === 'string' ? { host: v.host } : {}),
    ...(n.port !== undefined ? { port: n.port } : {}),
    ...(typeof v.db === 'string' ? { db: v.db } : {}),
    ...(typeof v.model === 'string' ? { model: v.model } : {}),
    ...(typeof v.vlm === 'string' ? { vlm: v.vlm } : {}),
    ...(typeof v.pipeline === 'string' ? { pipeline: v.pipeline } : {}),
    ...(typeof v.rules === 'string' ? { rules: readRules(v.rules) } : {}),
    ...(typeof v['archive-ng'] === 'string' ? { archiveNgDir: v['archive-ng'] } : {}),
    ...(n.bodyLimit !== undefined ? { bodyLimitBytes: n.bodyLimit } : {}),
    ...(n.timeout !== undefined ? { requestTimeoutMs: n.timeout } : {}),
    ...(n.workers !== undefined ? { workers: n.workers } : {}),
    // N workers run N inspections at once unless --concurrency says otherwise
    queue: { ...(base.queue ?? {}), ...(n.queue !== undefined ? { maxQueued: n.queue } : {}), ...(n.concurrency !== undefined ? { concurrency: n.concurrency } : n.workers !== undefined && base.queue?.concurrency === undefined ? { concurrency: n.workers } : {}) },
    apiKeys: [...(base.apiKeys ?? []), ...flagKeys],
  };
  const config = parseOptions(ServeConfigSchema, merged, 'serve options');
  if (config.apiKeys.length === 0) throw new KestrelError('E_OPTIONS', 'give at least one --api-key (or apiKeys in --config): every inspection request must carry a key');
  if (!config.model && !config.vlm) throw new KestrelError('E_OPTIONS', 'give --model NAME_OR_DIR (e.g. anomaly-magnetic-tile) and/or --vlm DIR');

  const inspector = config.model ? await createInspector({ pipeline: config.pipeline, model: config.model, rules: config.rules, workers: config.workers }) : undefined;
  const chat = config.vlm ? await createVlmChatBackend(config.vlm) : undefined;
  // a DB this run creates is removed again if the server never starts (a bad --host, a port in use)
  const newDb = config.db !== ':memory:' && !existsSync(config.db);
  const log = InspectionLog.open(config.db);
  const server = await createServer({ config, log, inspector, chat });
  const warm = await server.warmUp();
  if (warm.length && !ctx.json) ctx.err.write(`kestrel serve: model warmed up (${warm.map((t) => t.toFixed(0)).join(', ')} ms)\n`);
  let url: string;
  try {
    url = await server.listen();
  } catch (e) {
    log.close();
    if (newDb) for (const f of [config.db, `${config.db}-wal`, `${config.db}-shm`, `${config.db}-journal`]) rmSync(f, { force: true });
    throw new KestrelError('E_IO', `cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`, { cause: e });
  }
  ctx.out.write(JSON.stringify({ event: 'listening', url, pid: process.pid, db: log.file, model: inspector?.model ?? null, chat: chat?.name ?? null }) + '\n');
  if (!ctx.json) ctx.err.write(`kestrel serve: listening on ${url} (log ${log.file})\n`);

  return new Promise<number>((resolveRun) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      ctx.err.write(`kestrel serve: ${sig}: draining in-flight requests\n`);
      server.close().then(() => {
        ctx.err.write('kestrel serve: stopped\n');
        resolveRun(0);
      }, (e: unknown) => {
        ctx.err.write(`kestrel serve: shutdown error: ${(e as Error).message}\n`);
        resolveRun(1);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
