// kestrel serve on several machines, on one: a frontend and N workers as child processes sharing a
// BullMQ queue on Redis and a PostgreSQL store. Used by load-test.mjs and crash-test.mjs (--cluster).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { API_KEY, CLI } from './qc-load-lib.mjs';

/** Spawn `kestrel serve ARGS`; resolves when it prints the JSON line whose event is `ready`. */
function spawnServe(args, ready, timeoutMs = 120_000) {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; if (stderr.length > 20000) stderr = stderr.slice(-10000); });
  return new Promise((resolveStart, reject) => {
    let buf = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`kestrel serve ${args.join(' ')} did not start in ${timeoutMs} ms\n${stderr}`)); }, timeoutMs);
    child.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.includes(`"${ready}"`));
      if (line) { clearTimeout(timer); buf = ''; resolveStart({ child, info: JSON.parse(line), pid: child.pid, stderr: () => stderr }); }
    });
    child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`kestrel serve exited (${code ?? sig}) before "${ready}"\n${stderr}`)); });
  });
}

/** A fresh database on the PostgreSQL server at `adminUrl`; resolves to its URL and a drop function. */
export async function freshDatabase(adminUrl) {
  const name = `kestrel_load_${randomBytes(5).toString('hex')}`;
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const d = new pg.Client({ connectionString: adminUrl });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    },
  };
}

/** Start one worker process (`--role worker`); resolves when it takes jobs. */
export function startWorker({ store, redis, model, concurrency = 1 }) {
  return spawnServe(['--role', 'worker', '--queue', redis, '--store', store, '--model', model, '--api-key', API_KEY, '--concurrency', String(concurrency)], 'worker-ready');
}

/** Start the frontend (`--role frontend`, no model); resolves to { child, url, pid } once it listens. */
export async function startFrontend({ store, redis, maxQueued = 64, port = 0, timeoutMs }) {
  const cfg = JSON.stringify({ queue: { maxQueued } });
  const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-fe-'));
  const file = join(dir, 'serve.json');
  writeFileSync(file, cfg);
  try {
    const s = await spawnServe(['--role', 'frontend', '--queue', redis, '--store', store, '--config', file, '--api-key', API_KEY, '--port', String(port), '--host', '127.0.0.1', ...(timeoutMs ? ['--timeout', String(timeoutMs)] : [])], 'listening');
    return { ...s, url: s.info.url };
  } finally {
    rmSync(dir, { recursive: true, force: true }); // read at start only
  }
}

/** Rows of the store: id, part_id, request_key. */
export async function storeRows(url) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const r = await c.query('SELECT id, part_id, request_key, verdict FROM inspections');
  await c.end();
  return r.rows;
}

/** Remove the queue's keys so a run starts empty (the queue name is kestrel serve's default). */
export async function emptyQueue(redis) {
  const { Queue } = await import('bullmq');
  const { Redis } = await import('ioredis');
  const conn = new Redis(redis, { maxRetriesPerRequest: null });
  const q = new Queue('kestrel-inspect', { connection: conn });
  await q.obliterate({ force: true });
  await q.close();
  conn.disconnect();
}
