#!/usr/bin/env node
// Responsiveness and scaling of `kestrel serve` with its models in worker threads (issue 13):
//  1. mixed load: 8 clients stream chat completions (--vlm) and 16 clients post inspections (--model)
//     while a prober GETs /healthz every 20 ms; prints /healthz p50/p99/max.
//  2. scaling: the same 16 inspection clients against --workers 1 and then --workers 2 (concurrency =
//     workers), side by side in this run; prints inspections/s of each and the ratio.
//
//   node scripts/serve-responsiveness.mjs [--model defects-elpv] [--vlm test/fixtures/vlm/A] [--duration 20]
//        [--chat-clients 8] [--inspect-clients 16] [--workers 1] [--ramp 2] [--scaling-duration 20] [--only mixed|scaling] [--out FILE]
// /healthz figures exclude the first --ramp seconds (clients connecting, first requests compiled);
// healthzAll has every sample.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { API_KEY, ROOT, clientLoop, exited, flags, loadImages, percentile, rssOf, startServer } from './qc-load-lib.mjs';

const round = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);

/** One chat client: streamed completions (SSE read to [DONE]) until `until`. */
async function chatLoop(url, until, maxTokens) {
  let done = 0, failed = 0, tokens = 0;
  while (Date.now() < until) {
    try {
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'Describe a solar cell in one sentence.' }], max_tokens: maxTokens, stream: true }),
        signal: AbortSignal.timeout(60_000),
      });
      if (r.status === 429) { await r.body?.cancel(); await new Promise((s) => setTimeout(s, 100)); continue; }
      if (r.status !== 200) { failed++; await r.body?.cancel(); continue; }
      const text = await r.text();
      tokens += (text.match(/"delta":\{"content"/g) ?? []).length;
      if (text.includes('[DONE]')) done++; else failed++;
    } catch { failed++; }
  }
  return { done, failed, tokens };
}

/**
 * GET /healthz every `everyMs` until `until`, from its own worker thread: the 24 load clients share
 * this script's event loop, and their work must not count as the server's lateness.
 */
function probe(url, until, rampMs, everyMs = 20) {
  const code = `
    const { parentPort, workerData: { url, until, everyMs, rampMs } } = require('node:worker_threads');
    (async () => {
      const lat = []; const at = []; const start = Date.now(); let errors = 0;
      while (Date.now() < until) {
        const t0 = performance.now();
        try { const r = await fetch(url + '/healthz', { signal: AbortSignal.timeout(10000) }); await r.text(); lat.push(performance.now() - t0); at.push(Date.now() - start); } catch { errors++; }
        const wait = everyMs - (performance.now() - t0);
        if (wait > 0) await new Promise((s) => setTimeout(s, wait));
      }
      const worst = lat.map((v, i) => [v, at[i]]).sort((a, b) => b[0] - a[0]).slice(0, 5).map(([v, t]) => ({ ms: Math.round(v), atS: t / 1000 }));
      const steady = lat.filter((_, i) => at[i] >= rampMs);
      parentPort.postMessage({ lat, steady, errors, worst });
    })();`;
  const w = new Worker(code, { eval: true, workerData: { url, until, everyMs, rampMs } });
  return new Promise((res, rej) => { w.once('message', (m) => { res({ lat: m.lat.sort((a, b) => a - b), steady: m.steady.sort((a, b) => a - b), errors: m.errors, worst: m.worst }); void w.terminate(); }); w.once('error', rej); });
}

async function withServer(o, extra, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-resp-'));
  try {
    const server = await startServer({ db: join(dir, 'log.db'), model: o.model, queue: 64, concurrency: Number(o.workers ?? 1), extra });
    let peak = 0;
    const sampler = setInterval(() => { const r = rssOf(server.pid); if (r) peak = Math.max(peak, r.rssMB); }, 250);
    try {
      return { ...(await fn(server)), peakRssMB: round(peak) };
    } finally {
      clearInterval(sampler);
      server.child.kill('SIGTERM');
      const e = await exited(server.child);
      if (e.code !== 0) console.error(`server exit ${JSON.stringify(e)}: ${server.stderr().slice(-2000)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU seconds the server process has used so far (Linux /proc; utime + stime at 100 Hz), or null. */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch { return null; }
}

async function inspections(server, images, clients, seconds) {
  // warm both workers before the clock starts
  await Promise.all(Array.from({ length: 4 }, (_, c) => clientLoop({ getUrl: () => server.url, images, until: Date.now() + 1500, clientId: 100 + c, maxRequests: 3 })));
  const t0 = Date.now();
  const c0 = cpuSeconds(server.pid);
  const until = t0 + seconds * 1000;
  const res = (await Promise.all(Array.from({ length: clients }, (_, c) => clientLoop({ getUrl: () => server.url, images, until, clientId: c })))).flat();
  const wall = (Date.now() - t0) / 1000;
  const c1 = cpuSeconds(server.pid);
  const ok = res.filter((r) => r.status === 200).length;
  return {
    ok, failed: res.filter((r) => r.status !== 200 && r.status !== 429).length, rejected429: res.filter((r) => r.status === 429).length, okPerS: round(ok / wall),
    // cores the server actually got (on a shared machine two workers cannot scale past this)
    serverCores: c0 === null || c1 === null ? null : Math.round(((c1 - c0) / wall) * 100) / 100,
  };
}

const o = flags(process.argv.slice(2), { model: 'defects-elpv', vlm: join(ROOT, 'test/fixtures/vlm/A'), duration: '20', 'scaling-duration': '20', 'chat-clients': '8', 'inspect-clients': '16', 'max-tokens': '32', workers: '1', ramp: '2' });
const images = loadImages(64, typeof o['images-dir'] === 'string' ? o['images-dir'] : join(ROOT, 'datasets/elpv/images'));
const out = { model: o.model, vlm: o.vlm, images: images.length, node: process.version };

if (o.only !== 'scaling') {
  out.mixed = await withServer(o, ['--vlm', o.vlm, '--workers', String(o.workers)], async (server) => {
    const until = Date.now() + Number(o.duration) * 1000;
    const ramp = Number(o.ramp);
    const [h, chats, insp] = await Promise.all([
      probe(server.url, until, ramp * 1000),
      Promise.all(Array.from({ length: Number(o['chat-clients']) }, () => chatLoop(server.url, until, Number(o['max-tokens'])))),
      Promise.all(Array.from({ length: Number(o['inspect-clients']) }, (_, c) => clientLoop({ getUrl: () => server.url, images, until, clientId: c }))),
    ]);
    const flat = insp.flat();
    return {
      workers: Number(o.workers), durationS: Number(o.duration), chatClients: Number(o['chat-clients']), inspectClients: Number(o['inspect-clients']),
      // after the ramp-up (the first --ramp seconds: 24 clients connecting, first requests compiled)
      healthz: { rampS: ramp, n: h.steady.length, errors: h.errors, p50: round(percentile(h.steady, 50)), p99: round(percentile(h.steady, 99)), max: round(h.steady.at(-1)) },
      // every sample, ramp-up included
      healthzAll: { n: h.lat.length, p50: round(percentile(h.lat, 50)), p99: round(percentile(h.lat, 99)), max: round(h.lat.at(-1)), worst: h.worst },
      chat: { completions: chats.reduce((s, c) => s + c.done, 0), failed: chats.reduce((s, c) => s + c.failed, 0), streamedChunks: chats.reduce((s, c) => s + c.tokens, 0) },
      inspect: { ok: flat.filter((r) => r.status === 200).length, rejected429: flat.filter((r) => r.status === 429).length, failed: flat.filter((r) => r.status !== 200 && r.status !== 429).length },
    };
  });
}
if (o.only !== 'mixed') {
  const secs = Number(o['scaling-duration']);
  const clients = Number(o['inspect-clients']);
  const w1 = await withServer({ ...o, workers: 1 }, ['--workers', '1'], (s) => inspections(s, images, clients, secs));
  const w2 = await withServer({ ...o, workers: 2 }, ['--workers', '2'], (s) => inspections(s, images, clients, secs));
  out.scaling = { durationS: secs, clients, workers1: w1, workers2: w2, ratio: Math.round((w2.okPerS / w1.okPerS) * 100) / 100 };
}
const text = JSON.stringify(out, null, 2);
if (typeof o.out === 'string') writeFileSync(o.out, text + '\n');
console.log(text);
