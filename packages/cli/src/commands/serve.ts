import type { CommandContext, CommandSpec } from '../command.js';

const HELP = `Usage: kestrel serve --model NAME_OR_DIR --api-key KEY [options]

Serve inspections over HTTP (loopback by default) and log each one durably in SQLite.

Options:
  --config FILE        JSON config (see docs/qc-serve.md); flags override it
  --port N             port (default 8080; 0 = any free port)
  --host H             address (default 127.0.0.1)
  --db FILE            inspection log (default kestrel-inspections.db)
  --model NAME_OR_DIR  defects model: defects-elpv, anomaly-magnetic-tile, or a model folder
  --pipeline P         defects (default) or detect (a detector plus --rules)
  --rules FILE|JSON    detect rules, e.g. {"ngLabels":["scratch"],"minScore":0.5,"minCount":1}
  --vlm DIR            vision-language model folder for POST /v1/chat/completions
  --api-key KEY        an accepted key (repeatable); KEY:station1,station2 limits it to those stations.
                       Keys are hashed at start; config files hold only sha256 hashes.
  --archive-ng DIR     also save NG images to DIR/<date>/<id>.<ext>
  --queue N            inspections waiting at most (default 64; more get 429)
  --concurrency N      inspections at once (default 1)
  --body-limit BYTES   largest upload (default 20971520; more get 413)
  --timeout MS         per-request limit to receive the body and start the work (default 30000)
  --hash-key KEY       print the sha256 of KEY for a config file and exit

Prints one JSON line {"event":"listening","url":...} on stdout when ready. SIGTERM/SIGINT drain
in-flight requests (each answered and logged) before exiting.`;

function num(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${flag} needs a number`);
  return n;
}

async function run(ctx: CommandContext): Promise<number> {
  const { KestrelError, parseOptions } = await import('@kestrel/core');
  const { hashKey, parseApiKeyFlag } = await import('@kestrel/serve');
  const v = ctx.values;
  if (typeof v['hash-key'] === 'string') { ctx.out.write(hashKey(v['hash-key']) + '\n'); return 0; }
  const { ServeConfigSchema, loadServeConfigFile } = await import('@kestrel/serve');
  const { createInspector, readRules } = await import('@kestrel/serve');
  const base = typeof v.config === 'string' ? loadServeConfigFile(v.config) : {};
  const flagKeys = ((v['api-key'] as string[] | undefined) ?? []).map((k, i) => parseApiKeyFlag(k, i));
  let n: Record<string, number | undefined>;
  try {
    n = { port: num(v.port, '--port'), queue: num(v.queue, '--queue'), concurrency: num(v.concurrency, '--concurrency'), bodyLimit: num(v['body-limit'], '--body-limit'), timeout: num(v.timeout, '--timeout') };
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
    queue: { ...(base.queue ?? {}), ...(n.queue !== undefined ? { maxQueued: n.queue } : {}), ...(n.concurrency !== undefined ? { concurrency: n.concurrency } : {}) },
    apiKeys: [...(base.apiKeys ?? []), ...flagKeys],
  };
  const config = parseOptions(ServeConfigSchema, merged, 'serve options');
  if (config.apiKeys.length === 0) throw new KestrelError('E_OPTIONS', 'give at least one --api-key (or apiKeys in --config): every inspection request must carry a key');
  if (!config.model && !config.vlm) throw new KestrelError('E_OPTIONS', 'give --model NAME_OR_DIR (e.g. anomaly-magnetic-tile) and/or --vlm DIR');

  const { InspectionLog } = await import('@kestrel/serve');
  const { createVlmChatBackend } = await import('@kestrel/serve');
  const { createServer } = await import('@kestrel/serve');
  const inspector = config.model ? await createInspector({ pipeline: config.pipeline, model: config.model, rules: config.rules }) : undefined;
  const chat = config.vlm ? await createVlmChatBackend(config.vlm) : undefined;
  // a DB this run creates is removed again if the server never starts (a bad --host, a port in use)
  const { existsSync, rmSync } = await import('node:fs');
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

/** `kestrel serve`: the QC inspection server. */
export const commands: CommandSpec[] = [
  {
    path: ['serve'],
    summary: 'serve OK/NG inspections over HTTP with a durable SQLite inspection log',
    help: HELP,
    allowPositionals: false,
    options: {
      config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, db: { type: 'string' },
      model: { type: 'string' }, vlm: { type: 'string' }, pipeline: { type: 'string' }, rules: { type: 'string' }, 'api-key': { type: 'string', multiple: true },
      'archive-ng': { type: 'string' }, queue: { type: 'string' }, concurrency: { type: 'string' },
      'body-limit': { type: 'string' }, timeout: { type: 'string' }, 'hash-key': { type: 'string' },
    },
    run,
  },
];
