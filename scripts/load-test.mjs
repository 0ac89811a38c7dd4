#!/usr/bin/env node
// Load test of `kestrel serve`: N concurrent clients POST real magnetic-tile images for D seconds.
// Reports failed requests (anything but 200 and deliberate 429s), latency percentiles of the answers,
// the server's peak RSS, and checks that every answered id is in the inspection log.
//
//   node scripts/load-test.mjs --model anomaly-magnetic-tile --clients 32 --duration 60 [--timeout MS] [--queue N] [--images-dir DIR] [--out result.json]
//
// Several machines, on one: a frontend and N worker processes on a BullMQ queue (Redis) and a
// PostgreSQL store, once per worker count in --workers (side by side in one run, so the ratio of
// inspections/s is measured under the same load on the machine):
//
//   node scripts/load-test.mjs --cluster --redis redis://127.0.0.1:6379 --postgres postgres://postgres@127.0.0.1:5432/postgres \
//     --model defects-elpv --clients 8 --duration 60 --workers 1,2
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { clientLoop, exited, flags, loadImages, percentile, rssOf, startServer } from './qc-load-lib.mjs';
import { emptyQueue, freshDatabase, startFrontend, startWorker, storeRows } from './qc-cluster-lib.mjs';

const round = (x) => (x === null ? null : Math.round(x * 10) / 10);

/** One frontend + `workers` worker processes for `duration` s; every answered id must be in PostgreSQL once. */
export async function clusterLoadTest(o, workers) {
  const db = await freshDatabase(o.postgres);
  try {
    await emptyQueue(o.redis);
    const images = loadImages(Number(o.images ?? 64), typeof o['images-dir'] === 'string' ? o['images-dir'] : undefined);
    const ws = await Promise.all(Array.from({ length: workers }, () => startWorker({ store: db.url, redis: o.redis, model: o.model })));
    const fe = await startFrontend({ store: db.url, redis: o.redis, maxQueued: Number(o.queue) });
    const t0 = Date.now();
    const until = t0 + Number(o.duration) * 1000;
    const results = (await Promise.all(Array.from({ length: Number(o.clients) }, (_, c) => clientLoop({ getUrl: () => fe.url, images, until, clientId: c })))).flat();
    const wall = (Date.now() - t0) / 1000;
    fe.child.kill('SIGTERM');
    const feExit = await exited(fe.child);
    for (const w of ws) w.child.kill('SIGTERM');
    const wExits = await Promise.all(ws.map((w) => exited(w.child)));
    const rows = await storeRows(db.url);
    const ok = results.filter((r) => r.status === 200);
    const failed = results.filter((r) => r.status !== 200 && r.status !== 429);
    const lat = ok.map((r) => r.ms).sort((a, b) => a - b);
    const count = new Map();
    for (const r of rows) count.set(r.id, (count.get(r.id) ?? 0) + 1);
    return {
      workers, clients: Number(o.clients), durationS: Number(o.duration), wallS: round(wall), model: o.model,
      requests: results.length, ok: ok.length, rejected429: results.filter((r) => r.status === 429).length, failed: failed.length,
      failures: Object.entries(failed.reduce((m, r) => { const k = r.error ?? `${r.status} ${r.code}`; m[k] = (m[k] ?? 0) + 1; return m; }, {})),
      okPerS: round(ok.length / wall),
      latencyMs: { p50: round(percentile(lat, 50)), p90: round(percentile(lat, 90)), p99: round(percentile(lat, 99)) },
      store: { rows: rows.length, answeredButMissing: ok.filter((r) => !count.has(r.id)).length, duplicates: [...count.values()].filter((n) => n > 1).length },
      exits: { frontend: feExit, workers: wExits },
    };
  } finally {
    await db.drop();
  }
}

export async function loadTest(o) {
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-load-'));
  const db = join(dir, 'log.db');
  try {
    const images = loadImages(Number(o.images ?? 64), typeof o['images-dir'] === 'string' ? o['images-dir'] : undefined);
    const server = await startServer({ db, model: o.model, queue: Number(o.queue), concurrency: Number(o.concurrency), extra: o.timeout ? ['--timeout', String(o.timeout)] : [] });
    let peakRss = 0;
    const sampler = setInterval(() => { const r = rssOf(server.pid); if (r) peakRss = Math.max(peakRss, r.rssMB); }, 250);
    const t0 = Date.now();
    const until = t0 + Number(o.duration) * 1000;
    const results = (await Promise.all(Array.from({ length: Number(o.clients) }, (_, c) => clientLoop({ getUrl: () => server.url, images, until, clientId: c })))).flat();
    const wall = (Date.now() - t0) / 1000;
    clearInterval(sampler);
    const rss = rssOf(server.pid);
    const stats = await (await fetch(`${server.url}/v1/stats?window=3600`, { headers: { authorization: 'Bearer load-test-key-0123456789abcdef' } })).json();
    server.child.kill('SIGTERM');
    const exit = await exited(server.child);
    const ok = results.filter((r) => r.status === 200);
    const busy = results.filter((r) => r.status === 429);
    const failed = results.filter((r) => r.status !== 200 && r.status !== 429);
    const lat = ok.map((r) => r.ms).sort((a, b) => a - b);
    const d = new Database(db, { readonly: true });
    const ids = new Set(d.prepare('SELECT id FROM inspections').all().map((r) => r.id));
    const rows = d.prepare('SELECT COUNT(*) AS n FROM inspections').get().n;
    const ng = d.prepare("SELECT COUNT(*) AS n FROM inspections WHERE verdict = 'NG'").get().n;
    d.close();
    const missing = ok.filter((r) => !ids.has(r.id)).length;
    return {
      clients: Number(o.clients), durationS: Number(o.duration), wallS: round(wall), model: o.model, images: images.length, imagesFrom: o['images-dir'] ?? 'datasets/magnetic-tile (or test/fixtures/qc-serve)',
      queue: { maxQueued: Number(o.queue), concurrency: Number(o.concurrency) }, timeoutMs: o.timeout ? Number(o.timeout) : 30000,
      requests: results.length, ok: ok.length, rejected429: busy.length, failed: failed.length,
      failures: Object.entries(failed.reduce((m, r) => { const k = r.error ?? `${r.status} ${r.code}`; m[k] = (m[k] ?? 0) + 1; return m; }, {})),
      okPerS: round(ok.length / wall),
      latencyMs: { p50: round(percentile(lat, 50)), p90: round(percentile(lat, 90)), p99: round(percentile(lat, 99)), max: round(lat[lat.length - 1] ?? null) },
      serverLoggedTotalMs: stats.latencyMs ? { p50: stats.latencyMs.p50, p99: stats.latencyMs.p99 } : null,
      peakRssMB: round(Math.max(peakRss, rss?.peakMB ?? 0)),
      log: { rows, ng, answeredButMissing: missing },
      serverExit: exit,
      node: process.version,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv.includes('--cluster')) {
  const o = flags(process.argv.slice(2), { model: 'defects-elpv', clients: '8', duration: '60', queue: '64', workers: '1,2' });
  if (typeof o.redis !== 'string' || typeof o.postgres !== 'string') throw new Error('--cluster needs --redis redis://... and --postgres postgres://...');
  const runs = [];
  for (const w of String(o.workers).split(',').map(Number)) runs.push(await clusterLoadTest(o, w));
  const one = runs.find((r) => r.workers === 1), two = runs.find((r) => r.workers === 2);
  const r = { runs, twoOverOne: one && two ? Math.round((two.okPerS / one.okPerS) * 100) / 100 : null, node: process.version };
  const text = JSON.stringify(r, null, 2);
  if (typeof o.out === 'string') writeFileSync(o.out, text + '\n');
  console.log(text);
  process.exitCode = runs.every((x) => x.failed === 0 && x.store.answeredButMissing === 0 && x.store.duplicates === 0) ? 0 : 1;
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const o = flags(process.argv.slice(2), { model: 'anomaly-magnetic-tile', clients: '32', duration: '60', queue: '64', concurrency: '1' });
  const r = await loadTest(o);
  const text = JSON.stringify(r, null, 2);
  if (typeof o.out === 'string') writeFileSync(o.out, text + '\n');
  console.log(text);
  process.exitCode = r.failed === 0 && r.log.answeredButMissing === 0 && r.serverExit.code === 0 ? 0 : 1;
}
