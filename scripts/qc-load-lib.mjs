// Shared pieces of scripts/load-test.mjs and scripts/crash-test.mjs: start `kestrel serve` as a child
// process, run HTTP clients against it, read the inspection log. Loopback only; every loop is bounded in
// time and count.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(ROOT, 'packages/cli/bin/kestrel.js');
export const API_KEY = 'load-test-key-0123456789abcdef';

/** Parse `--name value` flags into an object of strings (booleans for bare flags). */
export function flags(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const k = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[k] = true;
    else { out[k] = next; i++; }
  }
  return out;
}

/** Up to `max` real line images, evenly spaced over the sorted list (so every class appears): magnetic tiles from datasets/, else the test fixtures. */
export function loadImages(max = 64, dir) {
  const roots = dir ? [resolve(dir)] : [join(ROOT, 'datasets/magnetic-tile'), join(ROOT, 'test/fixtures/qc-serve')];
  for (const r of roots) {
    if (!existsSync(r)) continue;
    const all = [];
    const walk = (d, depth) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory() && depth < 3) walk(join(d, e.name), depth + 1);
        else if (e.isFile() && /\.(jpe?g|png)$/i.test(e.name) && !/\/Imgs\/[^/]*\.png$/.test(join(d, e.name))) all.push(join(d, e.name));
      }
    };
    walk(r, 0);
    all.sort();
    if (!all.length) continue;
    const n = Math.min(max, all.length);
    return Array.from({ length: n }, (_, i) => all[Math.floor((i * all.length) / n)]).map((f) => ({ file: f, bytes: readFileSync(f) }));
  }
  throw new Error('no images found (datasets/magnetic-tile or test/fixtures/qc-serve)');
}

/** Start `kestrel serve` on a free loopback port; resolves when it prints its listening line. */
export function startServer({ db, model, queue = 64, concurrency = 1, extra = [], timeoutMs = 120_000 }) {
  if (!existsSync(join(ROOT, 'packages/cli/dist/index.js'))) throw new Error('build first: npx tsc -b (packages/cli/dist is missing)');
  const args = [CLI, 'serve', '--port', '0', '--host', '127.0.0.1', '--db', db, '--model', model, '--api-key', API_KEY, '--queue', String(queue), '--concurrency', String(concurrency), ...extra];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; if (stderr.length > 20000) stderr = stderr.slice(-10000); });
  return new Promise((resolveStart, reject) => {
    let buf = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server did not start in ${timeoutMs} ms\n${stderr}`)); }, timeoutMs);
    child.stdout.on('data', (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        clearTimeout(timer);
        const info = JSON.parse(line);
        resolveStart({ child, url: info.url, pid: info.pid, stderr: () => stderr });
      }
    });
    child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`server exited (${code ?? sig}) before listening\n${stderr}`)); });
  });
}

/** Resident set now and peak (VmHWM) of a process, MB, from /proc (Linux); null elsewhere. */
export function rssOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
    return { rssMB: kb('VmRSS') / 1024, peakMB: kb('VmHWM') / 1024 };
  } catch { return null; }
}

export function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1];
}

/**
 * One client: POST images until `until` (epoch ms) or `maxRequests`. Each part carries an
 * Idempotency-Key; when the connection fails (a server crash), the client retries the same part with
 * the same key, as a PLC would, so a part whose inspection was committed but whose answer was lost is
 * answered from the log rather than inspected twice. A 429 is a deliberate refusal: the client waits
 * (50-250 ms) and sends the next part. Returns one outcome per attempt.
 */
export async function clientLoop({ getUrl, images, until, clientId, station = 'load', maxRequests = 100_000, runId = Date.now().toString(36) }) {
  const outcomes = [];
  let i = 0, retry = null;
  while (Date.now() < until && outcomes.length < maxRequests) {
    const part = retry ?? { partId: `c${clientId}-r${i}`, img: images[(clientId * 7 + i) % images.length], tries: 0 };
    if (!retry) i++;
    retry = null;
    part.tries++;
    const t0 = performance.now();
    let status = 0, id = null, code = null, error = null, replayed = false;
    try {
      const res = await fetch(`${getUrl()}/v1/inspect?station=${station}&partId=${part.partId}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': part.img.file.endsWith('.png') ? 'image/png' : 'image/jpeg', 'idempotency-key': `${runId}-${part.partId}` },
        body: part.img.bytes,
        signal: AbortSignal.timeout(60_000),
      });
      status = res.status;
      replayed = res.headers.get('idempotent-replayed') === 'true';
      const body = await res.json().catch(() => null);
      if (status === 200) id = body?.id ?? null;
      else code = body?.error?.code ?? null;
    } catch (e) {
      error = e.cause?.code ?? e.name ?? String(e);
    }
    const ms = performance.now() - t0;
    outcomes.push({ clientId, partId: part.partId, status, id, code, error, ms, replayed, tries: part.tries, at: Date.now() });
    if (status === 429) await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    else if (status === 0) {
      if (part.tries < 40) retry = part; // same part, same key
      await new Promise((r) => setTimeout(r, 250)); // server down: do not spin
    }
  }
  return outcomes;
}

/** Wait for a child to exit; resolves to { code, signal }. */
export function exited(child, timeoutMs = 60_000) {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r({ code: child.exitCode, signal: child.signalCode });
    const t = setTimeout(() => r({ code: null, signal: 'timeout' }), timeoutMs);
    child.once('exit', (code, signal) => { clearTimeout(t); r({ code, signal }); });
  });
}
