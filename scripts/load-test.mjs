#!/usr/bin/env node
// Load test of `kestrel serve`: N concurrent clients POST real magnetic-tile images for D seconds.
// Reports failed requests (anything but 200 and deliberate 429s), latency percentiles of the answers,
// the server's peak RSS, and checks that every answered id is in the inspection log.
//
//   node scripts/load-test.mjs --model anomaly-magnetic-tile --clients 32 --duration 60 [--timeout MS] [--queue N] [--images-dir DIR] [--out result.json]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { clientLoop, exited, flags, loadImages, percentile, rssOf, startServer } from './qc-load-lib.mjs';

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
    const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
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

if (import.meta.url === `file://${process.argv[1]}`) {
  const o = flags(process.argv.slice(2), { model: 'anomaly-magnetic-tile', clients: '32', duration: '60', queue: '64', concurrency: '1' });
  const r = await loadTest(o);
  const text = JSON.stringify(r, null, 2);
  if (typeof o.out === 'string') writeFileSync(o.out, text + '\n');
  console.log(text);
  process.exitCode = r.failed === 0 && r.log.answeredButMissing === 0 && r.serverExit.code === 0 ? 0 : 1;
}
