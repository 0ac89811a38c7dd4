// kestrel serve with its models in worker threads: an injected worker crash, and the queue / timeout /
// 429 behaviour with the real shipped defects-elpv model holding a core (not a sleeping stand-in).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { parseApiKeyFlag } from '../packages/serve/src/auth.js';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { createDefectsInspector, type Inspector } from '../packages/serve/src/inspector.js';
import { createServer, type KestrelServer } from '../packages/serve/src/server.js';
import type { ServeConfigInput } from '../packages/serve/src/config.js';
import { FakeBrightnessInspectorForTests } from './helpers/qc-fake-inspector.js';
import { cliBuilt } from './helpers/qc-model.js';

const ROOT = resolve(import.meta.dirname, '..');
const FIX = resolve(import.meta.dirname, 'fixtures/qc-serve');
const IMAGES = readdirSync(FIX).filter((f) => f.endsWith('.jpg')).sort().map((f) => readFileSync(join(FIX, f)));
const KEY = 'workers-test-key-0123456789';
const AUTH = { authorization: `Bearer ${KEY}`, 'content-type': 'image/jpeg' };
const ELPV = 'defects-elpv';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

async function make(inspector: Inspector, config: Partial<ServeConfigInput> = {}): Promise<{ s: KestrelServer; log: InspectionLog }> {
  const dir = mkdtempSync(join(tmpdir(), 'kestrel-qc-workers-'));
  const log = InspectionLog.open(join(dir, 'log.db'));
  const s = await createServer({ config: { port: 0, apiKeys: [parseApiKeyFlag(KEY)], ...config }, log, inspector });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => s.close());
  return { s, log };
}

const post = (s: KestrelServer, body: Buffer, part: string) => s.app.inject({ method: 'POST', url: `/v1/inspect?station=line-1&partId=${part}`, headers: AUTH, payload: body });

describe('a model worker that dies', () => {
  it('fails only the request it held (503 E_WORKER_CRASHED, not logged); the worker restarts and the server keeps serving', async () => {
    const fake = new FakeBrightnessInspectorForTests(0.27, 5, { crashOnWhite: true });
    const { s, log } = await make(fake);
    const white = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 255, g: 255, b: 255 } } }).jpeg().toBuffer();
    expect((await post(s, IMAGES[0]!, 'before')).statusCode).toBe(200);
    const crashed = await post(s, white, 'crash');
    expect(crashed.statusCode).toBe(503);
    expect(crashed.json().error.code).toBe('E_WORKER_CRASHED');
    expect(fake.restarts).toBe(1);
    const after = await Promise.all(IMAGES.slice(0, 3).map((b, i) => post(s, b, `after${i}`)));
    expect(after.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    expect(log.count()).toBe(4);
    expect((await s.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe(`queue, timeout and 429 with the real ${ELPV} model in a worker`, () => {
  it('answers 429 with Retry-After when the queue is full; every 200 is logged, no 429 is', async () => {
    const { s, log } = await make(await createDefectsInspector({ model: ELPV }), { queue: { concurrency: 1, maxQueued: 2 } });
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => post(s, IMAGES[i % IMAGES.length]!, `q${i}`)));
    const ok = rs.filter((r) => r.statusCode === 200);
    const busy = rs.filter((r) => r.statusCode === 429);
    expect(ok.length + busy.length).toBe(10);
    expect(ok.length).toBeGreaterThanOrEqual(3);
    expect(busy.length).toBeGreaterThan(0);
    for (const b of busy) { expect(b.headers['retry-after']).toBe('1'); expect(b.json().error.code).toBe('E_QUEUE_FULL'); }
    expect(log.count()).toBe(ok.length);
  });

  it('a request whose job cannot start within --timeout gets 503 E_TIMEOUT (or 429 when the wait is known to be too long) and is not logged', async () => {
    const { s, log } = await make(await createDefectsInspector({ model: ELPV }), { requestTimeoutMs: 250, queue: { concurrency: 1, maxQueued: 32 } });
    await s.warmUp(1);
    const rs = await Promise.all(Array.from({ length: 16 }, (_, i) => post(s, IMAGES[i % IMAGES.length]!, `t${i}`)));
    const codes = rs.map((r) => r.statusCode);
    expect(codes.filter((c) => c !== 200 && c !== 503 && c !== 429)).toEqual([]);
    const late = rs.filter((r) => r.statusCode !== 200);
    expect(late.length).toBeGreaterThan(0);
    for (const r of late) expect(['E_TIMEOUT', 'E_QUEUE_FULL']).toContain(r.json().error.code);
    expect(log.count()).toBe(codes.filter((c) => c === 200).length);
  });

  it('/healthz answers while inspections are queued and running', async () => {
    const { s } = await make(await createDefectsInspector({ model: ELPV }), { queue: { concurrency: 1, maxQueued: 32 } });
    await s.warmUp(1);
    const work = Promise.all(Array.from({ length: 8 }, (_, i) => post(s, IMAGES[i % IMAGES.length]!, `h${i}`)));
    for (let t = 0; t < 100 && s.queue.active === 0; t++) await new Promise((r) => setTimeout(r, 5));
    const h = await s.app.inject({ method: 'GET', url: '/healthz' });
    expect(h.statusCode).toBe(200);
    expect(s.queue.active + s.queue.depth).toBeGreaterThan(0);
    expect((await work).every((r) => r.statusCode === 200)).toBe(true);
  });

  it('two workers give the same verdicts as one', async () => {
    const one = await make(await createDefectsInspector({ model: ELPV }));
    const two = await make(await createDefectsInspector({ model: ELPV, workers: 2 }), { queue: { concurrency: 2, maxQueued: 16 } });
    const a = await Promise.all(IMAGES.map((b, i) => post(one.s, b, `a${i}`)));
    const b = await Promise.all(IMAGES.map((x, i) => post(two.s, x, `b${i}`)));
    expect(b.map((r) => r.statusCode)).toEqual(a.map(() => 200));
    expect(b.map((r) => [r.json().verdict, r.json().score])).toEqual(a.map((r) => [r.json().verdict, r.json().score]));
  });
});

describe.skipIf(!cliBuilt())('kestrel serve --workers 2 (needs npm run build)', () => {
  it('serves, and SIGTERM drains the workers and exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kestrel-qc-workers-cli-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const child = spawn(process.execPath, [join(ROOT, 'packages/cli/bin/kestrel.js'), 'serve', '--port', '0', '--db', join(dir, 'log.db'), '--model', ELPV, '--api-key', KEY, '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const url = await new Promise<string>((res, rej) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.includes('"listening"'));
        if (line) res((JSON.parse(line) as { url: string }).url);
      });
      child.once('exit', (c) => rej(new Error(`serve exited ${c}: ${err}`)));
    });
    const rs = await Promise.all(IMAGES.slice(0, 4).map((b, i) => fetch(`${url}/v1/inspect?station=s&partId=c${i}`, { method: 'POST', headers: AUTH, body: b })));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});
