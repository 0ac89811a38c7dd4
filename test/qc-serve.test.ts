import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { clopperPearson } from '@kestrel/eval';
import { hashKey, parseApiKeyFlag } from '../packages/serve/src/auth.js';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { MIGRATIONS, SCHEMA_VERSION, migrate } from '../packages/serve/src/migrations.js';
import { createServer, type KestrelServer } from '../packages/serve/src/server.js';
import { WorkQueue, QueueError } from '../packages/serve/src/work-queue.js';
import { percentile } from '../packages/serve/src/stats.js';
import { heatmapRegions } from '../packages/serve/src/inspector.js';
import type { ServeConfigInput } from '../packages/serve/src/config.js';
import { FakeBrightnessInspectorForTests } from './helpers/qc-fake-inspector.js';
import { NOT_AN_IMAGE, corruptPng, hugePngHeader, truncated } from './helpers/qc-bad-images.js';

const FIX = resolve(import.meta.dirname, 'fixtures/qc-serve');
const IMAGES = readdirSync(FIX).filter((f) => f.endsWith('.jpg')).sort().map((f) => readFileSync(join(FIX, f)));
const KEY = 'test-key-all-stations-0123';
const KEY_A = 'test-key-station-a-4567';
const AUTH = { authorization: `Bearer ${KEY}` };
const AUTH_A = { authorization: `Bearer ${KEY_A}` };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'kestrel-qc-serve-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function make(config: Partial<ServeConfigInput> = {}, inspector = new FakeBrightnessInspectorForTests(0.27)): Promise<{ s: KestrelServer; log: InspectionLog; dir: string; inspector: FakeBrightnessInspectorForTests }> {
  const dir = tmp();
  const log = InspectionLog.open(join(dir, 'log.db'));
  const s = await createServer({
    config: { port: 0, apiKeys: [parseApiKeyFlag(KEY, 0), parseApiKeyFlag(`${KEY_A}:line-a`, 1)], ...config },
    log, inspector,
  });
  cleanups.push(() => s.close());
  return { s, log, dir, inspector };
}

function multipart(fields: Record<string, string>, file: Buffer, type = 'image/jpeg'): { body: Buffer; headers: Record<string, string> } {
  const b = '----kestrelboundary7d93';
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="image"; filename="part.jpg"\r\nContent-Type: ${type}\r\n\r\n`), file, Buffer.from(`\r\n--${b}--\r\n`));
  return { body: Buffer.concat(parts), headers: { 'content-type': `multipart/form-data; boundary=${b}` } };
}

describe('POST /v1/inspect', () => {
  it('needs a key: 401 without one or with a wrong one; /healthz and /metrics are open', async () => {
    const { s } = await make();
    const none = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a', headers: { 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('E_UNAUTHORIZED');
    const wrong = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a', headers: { 'content-type': 'image/jpeg', authorization: 'Bearer not-the-key-at-all' }, payload: IMAGES[0] });
    expect(wrong.statusCode).toBe(401);
    expect((await s.app.inject({ method: 'GET', url: '/v1/inspections' })).statusCode).toBe(401);
    expect((await s.app.inject({ method: 'GET', url: '/v1/stats' })).statusCode).toBe(401);
    expect((await s.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await s.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });

  it('answers raw, multipart and JSON uploads; each answer is already in the log', async () => {
    const { s, log } = await make();
    const raw = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a&partId=P-001', headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
    expect(raw.statusCode).toBe(200);
    const r = raw.json();
    expect(Object.keys(r).sort()).toEqual(['defects', 'id', 'model', 'ms', 'partId', 'score', 'station', 'threshold', 'verdict']);
    expect(['OK', 'NG']).toContain(r.verdict);
    expect(r.model).toEqual({ name: 'fake-brightness-test-only', version: 'test' });
    const row = log.get(r.id)!;
    expect(row).toBeDefined();
    expect(row.station).toBe('line-a');
    expect(row.partId).toBe('P-001');
    expect(row.score).toBe(r.score);
    expect(row.verdict).toBe(r.verdict);
    expect(row.imageSha256).toMatch(/^[0-9a-f]{64}$/);

    const mp = multipart({ station: 'line-b', partId: 'P-002' }, IMAGES[1]!);
    const m = await s.app.inject({ method: 'POST', url: '/v1/inspect', headers: { ...AUTH, ...mp.headers }, payload: mp.body });
    expect(m.statusCode).toBe(200);
    expect(log.get(m.json().id)!.partId).toBe('P-002');
    expect(m.json().station).toBe('line-b');

    const j = await s.app.inject({ method: 'POST', url: '/v1/inspect', headers: AUTH, payload: { image: `data:image/jpeg;base64,${IMAGES[2]!.toString('base64')}`, station: 'line-c' } });
    expect(j.statusCode).toBe(200);
    expect(log.get(j.json().id)!.station).toBe('line-c');
    // The same image bytes give the same sha256 whatever the transport.
    const j2 = await s.app.inject({ method: 'POST', url: '/v1/inspect', headers: AUTH, payload: { image: IMAGES[0]!.toString('base64'), station: 'line-c' } });
    expect(log.get(j2.json().id)!.imageSha256).toBe(row.imageSha256);
    expect(log.count()).toBe(4);
  });

  it('bad uploads get 4xx with the KestrelError code, nothing is logged, and the server keeps serving', async () => {
    const { s, log } = await make({ bodyLimitBytes: 200_000 });
    const cases: [string, Buffer, string, number, string][] = [
      ['empty', Buffer.alloc(0), 'image/png', 422, 'E_IMAGE_DECODE'],
      ['not an image', NOT_AN_IMAGE, 'image/png', 422, 'E_IMAGE_DECODE'],
      ['truncated jpeg', truncated(IMAGES[3]!, 0.4), 'image/jpeg', 422, 'E_IMAGE_DECODE'],
      ['corrupt png', await corruptPng(IMAGES[3]!), 'image/png', 422, 'E_IMAGE_DECODE'],
      ['50000x50000', hugePngHeader(), 'image/png', 422, 'E_IMAGE_TOO_LARGE'],
      ['over the body limit', Buffer.alloc(300_000, 7), 'image/jpeg', 413, 'E_PAYLOAD_TOO_LARGE'],
      ['wrong media type', IMAGES[0]!, 'text/plain', 415, 'E_UNSUPPORTED_MEDIA_TYPE'],
    ];
    for (const [what, payload, type, status, code] of cases) {
      const r = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a', headers: { ...AUTH, 'content-type': type }, payload });
      expect({ what, status: r.statusCode, code: r.json().error?.code, m: r.json().error?.message }).toMatchObject({ what, status, code });
    }
    const badJson = await s.app.inject({ method: 'POST', url: '/v1/inspect', headers: AUTH, payload: { image: '!!!not base64!!!', station: 'line-a' } });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.code).toBe('E_OPTIONS');
    const noStation = await s.app.inject({ method: 'POST', url: '/v1/inspect', headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
    expect(noStation.json().error.code).toBe('E_OPTIONS');
    expect(log.count()).toBe(0);
    const ok = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a', headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
    expect(ok.statusCode).toBe(200);
    expect(log.count()).toBe(1);
  });

  it('station and part ids cannot carry paths; NG archives land inside the archive folder only', async () => {
    const archive = join(tmp(), 'ng');
    const { s, log } = await make({ archiveNgDir: archive }, new FakeBrightnessInspectorForTests(0)); // everything NG
    for (const url of ['/v1/inspect?station=../../etc', '/v1/inspect?station=a/b', '/v1/inspect?station=line-a&partId=has%20space']) {
      const r = await s.app.inject({ method: 'POST', url, headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
      expect(r.statusCode).toBe(400);
    }
    const r = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a&partId=../../x', headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
    expect(r.statusCode).toBe(200);
    const rec = log.get(r.json().id)!;
    expect(rec.archivePath).toBe(`${rec.ts.slice(0, 10)}/${rec.id}.jpg`);
    const file = resolve(archive, rec.archivePath!);
    expect(file.startsWith(resolve(archive))).toBe(true);
    expect(readFileSync(file).equals(IMAGES[0]!)).toBe(true);
    expect(readdirSync(join(archive, rec.ts.slice(0, 10))).filter((f) => f.startsWith('.tmp'))).toEqual([]);
    // A multipart filename is never used for anything.
    const mp = multipart({ station: 'line-a' }, IMAGES[1]!);
    const evil = Buffer.from(mp.body.toString('latin1').replace('filename="part.jpg"', 'filename="../../../../tmp/evil.jpg"'), 'latin1');
    const m = await s.app.inject({ method: 'POST', url: '/v1/inspect', headers: { ...AUTH, ...mp.headers }, payload: evil });
    expect(m.statusCode).toBe(200);
    const rec2 = log.get(m.json().id)!;
    expect(rec2.archivePath).toBe(`${rec2.ts.slice(0, 10)}/${rec2.id}.jpg`);
    expect(readFileSync(resolve(archive, rec2.archivePath!)).equals(IMAGES[1]!)).toBe(true);
    expect(readdirSync(archive).flatMap((d) => readdirSync(join(archive, d))).sort()).toEqual([`${rec.id}.jpg`, `${rec2.id}.jpg`].sort());
  });
});

describe('Idempotency-Key', () => {
  it('a retried request is answered from the log: same id, one row, one inspection', async () => {
    const { s, log, inspector } = await make();
    const send = (k: string, station = 'line-a'): Promise<import('light-my-request').Response> =>
      s.app.inject({ method: 'POST', url: `/v1/inspect?station=${station}&partId=P-9`, headers: { ...AUTH, 'content-type': 'image/jpeg', 'idempotency-key': k }, payload: IMAGES[0] });
    const a = await send('line-a:P-9:attempt');
    const b = await send('line-a:P-9:attempt');
    expect(a.statusCode).toBe(200);
    expect(b.statusCode).toBe(200);
    expect(b.json()).toEqual(a.json());
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(inspector.calls).toBe(1);
    expect(log.count()).toBe(1);
    expect(log.get(a.json().id)!.requestKey).toBe('line-a:P-9:attempt');
    // Concurrent duplicates: both answered with the first commit.
    const [c, d] = await Promise.all([send('k-concurrent-1'), send('k-concurrent-1')]);
    expect(c.json().id).toBe(d.json().id);
    expect(log.count()).toBe(2);
    expect((await send('line-a:P-9:attempt', 'line-b')).statusCode).toBe(409);
    expect((await send('has space')).statusCode).toBe(400);
  });
});

describe('station-scoped keys', () => {
  it('a key for line-a cannot submit to, list, fetch or count another station', async () => {
    const { s } = await make();
    const mine = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a', headers: { ...AUTH_A, 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
    expect(mine.statusCode).toBe(200);
    const theirs = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-b', headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[1] });
    expect(theirs.statusCode).toBe(200);
    const submitB = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-b', headers: { ...AUTH_A, 'content-type': 'image/jpeg' }, payload: IMAGES[1] });
    expect(submitB.statusCode).toBe(403);
    expect((await s.app.inject({ method: 'GET', url: '/v1/inspections?station=line-b', headers: AUTH_A })).statusCode).toBe(403);
    const all = (await s.app.inject({ method: 'GET', url: '/v1/inspections', headers: AUTH_A })).json();
    expect(all.items.map((i: { station: string }) => i.station)).toEqual(['line-a']);
    expect((await s.app.inject({ method: 'GET', url: `/v1/inspections/${theirs.json().id}`, headers: AUTH_A })).statusCode).toBe(404);
    expect((await s.app.inject({ method: 'GET', url: `/v1/inspections/${mine.json().id}`, headers: AUTH_A })).statusCode).toBe(200);
    expect((await s.app.inject({ method: 'GET', url: '/v1/stats', headers: AUTH_A })).json().counts.total).toBe(1);
    expect((await s.app.inject({ method: 'GET', url: '/v1/stats?station=line-b', headers: AUTH_A })).statusCode).toBe(403);
    // The unscoped key sees both.
    expect((await s.app.inject({ method: 'GET', url: '/v1/inspections', headers: AUTH })).json().items).toHaveLength(2);
  });

  it('keys are kept as sha256 only and parsed with their scope', () => {
    const k = parseApiKeyFlag('abcdefgh12345:st1, st2');
    expect(k).toEqual({ sha256: hashKey('abcdefgh12345'), stations: ['st1', 'st2'], name: 'key1' });
    expect(JSON.stringify(k)).not.toContain('abcdefgh12345');
    expect(() => parseApiKeyFlag('short')).toThrow(/8 characters/);
  });
});

describe('GET /v1/inspections and /v1/stats', () => {
  it('pages newest first with a cursor and filters by station, verdict and time', async () => {
    const { s, log } = await make();
    const t0 = Date.now();
    for (let i = 0; i < 11; i++) {
      log.insert({
        id: `00000000-0000-4000-8000-0000000000${String(i).padStart(2, '0')}`, ts: t0 - (11 - i) * 1000, station: i % 2 ? 'odd' : 'even', partId: `p${i}`, source: 'http',
        imageSha256: 'a'.repeat(64), imageBytes: 1, model: { name: 'm', version: 'v' }, score: i / 10, threshold: 0.5,
        verdict: i >= 5 ? 'NG' : 'OK', defects: [], timings: { queueMs: 0, inferMs: i, totalMs: i + 1 }, archivePath: null,
      });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await s.app.inject({ method: 'GET', url: `/v1/inspections?limit=3${cursor ? `&cursor=${cursor}` : ''}`, headers: AUTH });
      expect(r.statusCode).toBe(200);
      const body = r.json() as { items: { partId: string }[]; next: string | null };
      seen.push(...body.items.map((x) => x.partId));
      cursor = body.next;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual(Array.from({ length: 11 }, (_, i) => `p${10 - i}`));
    expect(pages).toBe(4);
    const q = async (qs: string): Promise<string[]> => (await s.app.inject({ method: 'GET', url: `/v1/inspections?${qs}`, headers: AUTH })).json().items.map((x: { partId: string }) => x.partId);
    expect(await q('station=odd&verdict=NG')).toEqual(['p9', 'p7', 'p5']);
    expect(await q(`since=${t0 - 3000}`)).toEqual(['p10', 'p9', 'p8']);
    expect(await q(`since=${new Date(t0 - 5000).toISOString()}&until=${new Date(t0 - 3000).toISOString()}`)).toEqual(['p7', 'p6']);
    expect((await s.app.inject({ method: 'GET', url: '/v1/inspections?cursor=garbage', headers: AUTH })).statusCode).toBe(400);
    expect((await s.app.inject({ method: 'GET', url: '/v1/inspections?limit=0', headers: AUTH })).statusCode).toBe(400);
    expect((await s.app.inject({ method: 'GET', url: '/v1/inspections?verdict=MAYBE', headers: AUTH })).statusCode).toBe(400);

    const st = (await s.app.inject({ method: 'GET', url: '/v1/stats?window=60', headers: AUTH })).json();
    expect(st.counts).toEqual({ total: 11, ok: 5, ng: 6 });
    const ci = clopperPearson(6, 11);
    expect(st.ngRate).toEqual({ estimate: 6 / 11, lower: ci.lower, upper: ci.upper, confidence: 0.95 });
    const lat = Array.from({ length: 11 }, (_, i) => i + 1);
    expect(st.latencyMs).toEqual({ p50: percentile(lat, 50), p90: percentile(lat, 90), p95: percentile(lat, 95), p99: percentile(lat, 99), max: 11, n: 11 });
    expect(st.throughput.perMinute).toBeCloseTo((60 * 11) / st.throughput.spanSeconds, 6);
    const even = (await s.app.inject({ method: 'GET', url: '/v1/stats?window=60&station=even', headers: AUTH })).json();
    expect(even.counts.total).toBe(6);
    const empty = (await s.app.inject({ method: 'GET', url: '/v1/stats?station=nobody', headers: AUTH })).json();
    expect(empty.ngRate).toBeNull();
    expect(empty.latencyMs).toBeNull();
  });

  it('percentile is nearest-rank', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 99)).toBe(4);
    expect(percentile([5], 1)).toBe(5);
  });
});

describe('work queue and load shedding', () => {
  it('answers 429 with Retry-After when the queue is full; every 200 is logged, no 429 is', async () => {
    const { s, log } = await make({ queue: { concurrency: 1, maxQueued: 2 } }, new FakeBrightnessInspectorForTests(0.27, 60));
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => s.app.inject({ method: 'POST', url: `/v1/inspect?station=line-a&partId=q${i}`, headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[i % IMAGES.length] })));
    const ok = rs.filter((r) => r.statusCode === 200);
    const busy = rs.filter((r) => r.statusCode === 429);
    expect(ok.length + busy.length).toBe(10);
    expect(ok.length).toBeGreaterThanOrEqual(3);
    expect(busy.length).toBeGreaterThan(0);
    for (const b of busy) { expect(b.headers['retry-after']).toBe('1'); expect(b.json().error.code).toBe('E_QUEUE_FULL'); }
    expect(log.count()).toBe(ok.length);
    for (const r of ok) expect(log.get(r.json().id)).toBeDefined();
    const metrics = (await s.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('kestrel_errors_total{code="E_QUEUE_FULL"}');
    expect(metrics).toMatch(new RegExp(`kestrel_http_requests_total\\{route="/v1/inspect",status="200"\\} ${ok.length}`));
    expect(metrics).toContain('# TYPE kestrel_inspection_seconds histogram');
  });

  it('bounds requests in progress before their bodies are read, and releases the slots afterwards', async () => {
    const { s, log } = await make({ queue: { concurrency: 1, maxQueued: 0 } }, new FakeBrightnessInspectorForTests(0.27, 30));
    const burst = await Promise.all(Array.from({ length: 30 }, (_, i) => s.app.inject({ method: 'POST', url: `/v1/inspect?station=line-a&partId=b${i}`, headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[i % IMAGES.length] })));
    const codes = burst.map((r) => r.statusCode);
    expect(codes.filter((c) => c !== 200 && c !== 429)).toEqual([]);
    expect(burst.filter((r) => r.statusCode === 429).map((r) => r.json().error.message).some((m: string) => /in progress \(9\)/.test(m))).toBe(true);
    expect(log.count()).toBe(codes.filter((c) => c === 200).length);
    for (let i = 0; i < 12; i++) {
      const r = await s.app.inject({ method: 'POST', url: '/v1/inspect?station=line-a', headers: { ...AUTH, 'content-type': 'image/jpeg' }, payload: IMAGES[0] });
      expect(r.statusCode).toBe(200);
    }
  });

  it('refuses at once a job whose expected wait is past its deadline', async () => {
    const q = new WorkQueue(1, 100);
    const job = (): Promise<number> => new Promise((r) => setTimeout(() => r(1), 50));
    await q.push(job); // learn the run time (~50 ms)
    const a = q.push(job, 1000);
    const b = q.push(job, 1000); // one ahead: ~100 ms expected
    expect(q.expectedWaitMs()).toBeGreaterThan(80);
    const t0 = performance.now();
    await expect(q.push(job, 150)).rejects.toMatchObject({ reason: 'full', message: expect.stringMatching(/expected wait/) });
    expect(performance.now() - t0).toBeLessThan(30); // refused, not timed out
    await Promise.all([a, b]);
  });

  it('drops a job that waited past its deadline without running it, and drains on close', async () => {
    const q = new WorkQueue(1, 10);
    let ran = 0;
    const slow = q.push(() => new Promise((r) => setTimeout(() => r(++ran), 80)));
    const late = q.push(async () => ++ran, 20);
    await expect(late).rejects.toBeInstanceOf(QueueError);
    await slow;
    expect(ran).toBe(1);
    const a = q.push(() => new Promise((r) => setTimeout(() => r('a'), 30)));
    const drained = q.drain();
    await expect(q.push(async () => 'b')).rejects.toMatchObject({ reason: 'closed' });
    await drained;
    expect((await a).value).toBe('a');
  });

  it('graceful close answers and logs every accepted request, then refuses connections', async () => {
    const { s, log } = await make({ queue: { concurrency: 1, maxQueued: 16 } }, new FakeBrightnessInspectorForTests(0.27, 40));
    const url = await s.listen();
    const send = (i: number): Promise<Response> => fetch(`${url}/v1/inspect?station=line-a&partId=g${i}`, { method: 'POST', headers: { ...AUTH, 'content-type': 'image/jpeg' }, body: IMAGES[i % IMAGES.length] });
    const inflight = Array.from({ length: 6 }, (_, i) => send(i));
    // Close once all six are accepted (queued or running); a request arriving later would get 503.
    for (let t = 0; t < 200 && s.queue.depth + s.queue.active < 6; t++) await new Promise((r) => setTimeout(r, 10));
    expect(s.queue.depth + s.queue.active).toBe(6);
    const ids: string[] = [];
    const closed = s.close();
    for (const p of inflight) {
      const r = await p;
      expect(r.status).toBe(200);
      ids.push(((await r.json()) as { id: string }).id);
    }
    await closed;
    await expect(send(99)).rejects.toThrow();
    const db = new Database(log.file, { readonly: true });
    const rows = db.prepare('SELECT id FROM inspections').all() as { id: string }[];
    db.close();
    expect(rows.map((r) => r.id).sort()).toEqual(ids.sort());
  });
});

describe('chat route without a VLM', () => {
  it('answers 404 with a clear message', async () => {
    const { s } = await make();
    const r = await s.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: AUTH, payload: { messages: [{ role: 'user', content: 'hi' }] } });
    expect(r.statusCode).toBe(404);
    expect(r.json().error.message).toMatch(/--vlm/);
    expect((await s.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: {} })).statusCode).toBe(401);
  });
});

describe('inspection log', () => {
  it('opens in WAL with synchronous=FULL at the current schema version', () => {
    const log = InspectionLog.open(join(tmp(), 'a.db'));
    cleanups.push(() => log.close());
    expect(log.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(log.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(log.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    const versions = log.db.prepare('SELECT version FROM schema_version ORDER BY version').all() as { version: number }[];
    expect(versions.map((v) => v.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('migrates a version-1 database keeping its rows, and refuses a newer one', () => {
    const file = join(tmp(), 'old.db');
    const db = new Database(file);
    migrate(db, MIGRATIONS.slice(0, 1));
    db.prepare(`INSERT INTO inspections (id, ts, station, part_id, source, image_sha256, image_bytes, model_name, model_version, score, threshold, verdict, defects, queue_ms, infer_ms, total_ms)
      VALUES ('00000000-0000-4000-8000-000000000001', 1, 's', NULL, 'http', 'x', 1, 'm', 'v', 0.1, 0.5, 'OK', '[]', 0, 0, 0)`).run();
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    db.close();
    const log = InspectionLog.open(file);
    expect(log.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(log.count()).toBe(1);
    expect(log.journalCount()).toBe(0);
    log.db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    log.close();
    expect(() => InspectionLog.open(file)).toThrow(/newer than this Kestrel/);
  });

  it('refuses a file that is not a database', () => {
    const d = tmp();
    const f = join(d, 'junk.db');
    writeFileSync(f, 'this is not sqlite'.repeat(100));
    expect(() => InspectionLog.open(f)).toThrow(/not a usable inspection log/);
    expect(existsSync(f)).toBe(true);
  });
});

describe('heat map regions', () => {
  it('boxes 4-connected cells over the threshold in image pixels, strongest first', () => {
    // 4x3 grid, image 40x30: two blobs.
    const data = new Float32Array([
      0, 5, 5, 0,
      0, 5, 0, 0,
      9, 0, 0, 0,
    ]);
    const r = heatmapRegions({ width: 4, height: 3, data }, 4, 40, 30);
    expect(r).toEqual([
      { label: 'anomaly', score: 9, box: [0, 20, 10, 10] },
      { label: 'anomaly', score: 5, box: [10, 0, 20, 20] },
    ]);
    // With a one-cell border left out (as the model's score does), only the inner cell (1,1) remains.
    expect(heatmapRegions({ width: 4, height: 3, data }, 4, 40, 30, 16, 1)).toEqual([{ label: 'anomaly', score: 5, box: [10, 10, 10, 10] }]);
  });
});

describe('config file and the serve command', () => {
  it('reads a JSON config with hashed keys and rejects unknown or bad fields by name', async () => {
    const { loadServeConfigFile } = await import('../packages/serve/src/config.js');
    const d = tmp();
    const good = join(d, 'serve.json');
    writeFileSync(good, JSON.stringify({ port: 9000, apiKeys: [{ sha256: hashKey('some-long-key-1'), stations: ['a'] }], queue: { maxQueued: 4 } }));
    expect(loadServeConfigFile(good)).toMatchObject({ port: 9000, queue: { maxQueued: 4 } });
    const bad = join(d, 'bad.json');
    writeFileSync(bad, JSON.stringify({ port: 9000, apiKey: 'plain' }));
    expect(() => loadServeConfigFile(bad)).toThrow(/bad\.json.*apiKey/);
    writeFileSync(bad, JSON.stringify({ apiKeys: [{ sha256: 'not-a-hash' }] }));
    expect(() => loadServeConfigFile(bad)).toThrow(/apiKeys\.0\.sha256/);
    writeFileSync(bad, '{ not json');
    expect(() => loadServeConfigFile(bad)).toThrow(/not valid JSON/);
  });

  it('kestrel serve: --hash-key prints the sha256; no key or no model is a clear E_OPTIONS', async () => {
    const { commands } = await import('../packages/cli/src/commands/serve.js');
    const serve = commands[0]!;
    let out = '';
    const ctx = (values: Record<string, string | string[] | boolean>) => ({
      values, positionals: [], json: false, debug: false,
      out: { write: (s: string) => { out += s; return true; } } as unknown as NodeJS.WritableStream,
      err: { write: () => true } as unknown as NodeJS.WritableStream,
    });
    expect(await serve.run(ctx({ 'hash-key': 'some-long-key-1' }))).toBe(0);
    expect(out.trim()).toBe(hashKey('some-long-key-1'));
    await expect(serve.run(ctx({ model: 'anomaly-magnetic-tile' }))).rejects.toMatchObject({ code: 'E_OPTIONS', message: expect.stringMatching(/--api-key/) });
    await expect(serve.run(ctx({ 'api-key': ['some-long-key-1'] }))).rejects.toMatchObject({ code: 'E_OPTIONS', message: expect.stringMatching(/--model/) });
    await expect(serve.run(ctx({ 'api-key': ['some-long-key-1'], model: 'no-such-model-anywhere' }))).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND' });
    await expect(serve.run(ctx({ 'api-key': ['some-long-key-1'], model: 'x', port: 'eighty' }))).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});

describe('warm-up', () => {
  it('runs the model through the queue without logging and teaches the queue a run time', async () => {
    const { s, log, inspector } = await make({}, new FakeBrightnessInspectorForTests(0.27, 20));
    const times = await s.warmUp(2);
    expect(times).toHaveLength(2);
    expect(inspector.calls).toBe(2);
    expect(log.count()).toBe(0);
    const slow = s.queue.push(() => new Promise((r) => setTimeout(r, 50)));
    expect(s.queue.expectedWaitMs()).toBeGreaterThan(10);
    await slow;
  });
});
