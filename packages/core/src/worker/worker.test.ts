import { describe, expect, it, afterAll } from 'vitest';
import { KestrelError } from '../errors.js';
import { WorkerClient } from './client.js';
import { WorkerPool, threadsPerWorker } from './pool.js';

// The worker imports @kestrel/core from its dist/ (workers run compiled JavaScript): `npx tsc -b` first.
const script = new URL('./test-worker.mjs', import.meta.url);

describe('worker protocol', () => {
  const c = new WorkerClient({ script, init: { tag: 'a' } });
  afterAll(() => c.close());

  it('loads in the worker and answers calls', async () => {
    const info = (await c.start()) as { threadId: number; init: unknown };
    expect(info.threadId).toBeGreaterThan(0);
    expect(info.init).toEqual({ tag: 'a' });
    expect(await c.call('echo', { x: [1, 2, 3] })).toEqual({ x: [1, 2, 3] });
  });

  it('keeps a KestrelError code, message and details across the boundary', async () => {
    const e = await c.call('fail', null).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KestrelError);
    expect(e).toMatchObject({ code: 'E_CHECKPOINT_FORMAT', message: 'bad tensor x', details: { tensor: 'x' } });
    const p = await c.call('failPlain', null).catch((x: unknown) => x);
    expect(p).toMatchObject({ code: 'E_INTERNAL' });
    expect((p as Error).message).toContain('TypeError: boom');
    await expect(c.call('nope', null)).rejects.toMatchObject({ code: 'E_UNSUPPORTED' });
  });

  it('streams events in order while the caller thread stays free', async () => {
    const seen: unknown[] = [];
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 5);
    const r = await c.call('stream', { n: 6, ms: 40 }, { onEvent: (d) => seen.push(d) });
    clearInterval(timer);
    expect(r).toEqual({ done: 6 });
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
    // 240 ms of busy work in the worker; a blocked caller thread would see no tick at all
    expect(ticks).toBeGreaterThan(0);
  });

  it('an AbortSignal stops the work inside the worker', async () => {
    const ac = new AbortController();
    const seen: unknown[] = [];
    // yieldEach false: the handler never yields, so only the poll at each emit can see the abort
    const p = c.call('stream', { n: 1000, ms: 20, yieldEach: false }, { signal: ac.signal, onEvent: (d) => { seen.push(d); if (seen.length === 3) ac.abort(); } });
    await expect(p).rejects.toMatchObject({ code: 'E_ABORTED' });
    // the worker stopped a few events after the abort instead of running all 1000
    expect(seen.length).toBeLessThan(10);
    expect(await c.call('echo', 1)).toBe(1);
  });

  it('moves transferred bytes instead of copying them', async () => {
    const b = new Uint8Array([1, 2, 3, 250]);
    const r = await c.call('sum', b.buffer, { transfer: [b.buffer] });
    expect(r).toEqual({ length: 4, sum: 256 });
    expect(b.byteLength).toBe(0); // detached: the bytes moved to the worker
    const out = await c.call<Uint8Array>('bytesOut', { n: 1000 });
    expect(out.length).toBe(1000);
    expect(out[999]).toBe(7);
  });

  it('a load failure rejects start with the worker\'s own error', async () => {
    const bad = new WorkerClient({ script, init: { failInit: true } });
    await expect(bad.start()).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND', details: { path: '/nowhere' } });
    await bad.close();
  });
});

describe('a worker that dies', () => {
  it('process.exit fails only its in-flight requests with E_WORKER_CRASHED and the worker is restarted', async () => {
    const c = new WorkerClient({ script, init: null });
    const first = ((await c.start()) as { threadId: number }).threadId;
    const slow = c.call('stream', { n: 50, ms: 20 });
    const crash = c.call('exit', null);
    await expect(crash).rejects.toMatchObject({ code: 'E_WORKER_CRASHED' });
    await expect(slow).rejects.toMatchObject({ code: 'E_WORKER_CRASHED' });
    expect(await c.call('echo', 'after')).toBe('after');
    expect(c.restarts).toBe(1);
    expect((c.info as { threadId: number }).threadId).not.toBe(first);
    await c.close();
  });

  it('running out of memory kills only the worker', async () => {
    const c = new WorkerClient({ script, init: null, resourceLimits: { maxOldGenerationSizeMb: 48 } });
    const e = await c.call('oom', null).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'E_WORKER_CRASHED' });
    expect((e as KestrelError).message).toContain('out of memory');
    expect(await c.call('echo', 2)).toBe(2);
    await c.close();
  });

  it('a disposed client refuses calls', async () => {
    const c = new WorkerClient({ script, init: null });
    await c.start();
    await c.close();
    await expect(c.call('echo', 1)).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});

describe('worker pool', () => {
  it('spreads calls over its workers, each its own thread', async () => {
    const pool = new WorkerPool(2, () => ({ script, init: null }));
    await pool.start();
    const ids = await Promise.all([pool.call<number>('spin', { ms: 50 }), pool.call<number>('spin', { ms: 50 })]);
    expect(new Set(ids).size).toBe(2);
    await pool.close();
  });

  it('sizes native threads so workers × threads never exceed the cores', () => {
    expect(threadsPerWorker(1, 2)).toBe(2);
    expect(threadsPerWorker(2, 2)).toBe(1);
    expect(threadsPerWorker(3, 2)).toBe(1);
    expect(threadsPerWorker(2, 16)).toBe(8);
    expect(threadsPerWorker(3, 16)).toBe(5);
    expect(() => threadsPerWorker(0, 2)).toThrow(KestrelError);
  });
});
