/**
 * pipeline(task) with its model in a worker thread (the default) against the same pipeline in process:
 * same answers, streaming, abort, errors with their codes, a pool of two. Workers run dist/: `npx tsc -b` first.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { pipeline } from '../index.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const VLM = `${ROOT}test/fixtures/vlm/A`;
const IMG0 = `${VLM}/img0.png`;
const CELLS = readFileSync(`${ROOT}models/defects-elpv/holdout.txt`, 'utf8').split('\n').filter(Boolean).slice(0, 4).map((f) => `${ROOT}datasets/elpv/${f}`);

const closers: Array<() => unknown> = [];
afterAll(async () => { for (const c of closers) await c(); });

describe('ask in a worker', () => {
  it('answers as in process, streams the same pieces, chats, and keeps the model in the worker', async () => {
    const ask = await pipeline('ask', { model: VLM, maxNewTokens: 6, backend: 'portable' });
    const here = await pipeline('ask', { model: VLM, maxNewTokens: 6, backend: 'portable', inProcess: true });
    closers.push(() => ask.dispose(), () => here.dispose());
    const a = await ask(IMG0, 'What is this?');
    const b = await here(IMG0, 'What is this?');
    expect(a.text).toBe(b.text);
    expect(a.usage.imageTokens).toBe(57); // golden case_img0: 150x90 on A = 2x1 tiles + global view
    expect(a.usage.completionTokens).toBe(b.usage.completionTokens);
    const pieces: string[] = [];
    const gen = ask.stream(IMG0, 'What is this?');
    let r = await gen.next();
    while (!r.done) { pieces.push(r.value); r = await gen.next(); }
    expect(pieces.join('')).toBe(a.text);
    expect(r.value.text).toBe(a.text);
    const c = await ask.chat([{ role: 'user', content: [{ type: 'image', image: sharp(IMG0) }, { type: 'text', text: 'What is this?' }] }]);
    expect(c.text).toBe(a.text);
    expect(() => ask.model).toThrow(expect.objectContaining({ code: 'E_UNSUPPORTED' }));
  });

  it('an AbortSignal stops the answer inside the worker (E_ABORTED)', async () => {
    const ask = await pipeline('ask', { model: VLM, maxNewTokens: 10_000, backend: 'portable' });
    closers.push(() => ask.dispose());
    const ac = new AbortController();
    let n = 0;
    const p = ask(IMG0, 'What is this?', { signal: ac.signal, onText: () => { if (++n === 2) ac.abort(); } });
    await expect(p).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(n).toBeLessThan(200);
  });

  it('load errors come back with their KestrelError code', async () => {
    await expect(pipeline('ask', { model: `${VLM}/nope` })).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND', message: expect.stringContaining('nope') });
    await expect(pipeline('ask', { model: VLM, maxNewTokens: -3 })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(pipeline('ask', { model: VLM, workers: 0 } as never)).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});

describe('defects with workers: 2', () => {
  it('gives the in-process verdicts and scores, for paths, Buffers and sharp inputs', async () => {
    const pool = await pipeline('defects', { model: 'defects-elpv', workers: 2 });
    const here = await pipeline('defects', { model: 'defects-elpv', inProcess: true });
    closers.push(() => pool.dispose(), () => here.dispose());
    expect(pool.model).toEqual(here.model);
    const ref = await here(CELLS);
    const byPath = await Promise.all(CELLS.map((f) => pool(f)));
    const bytes = CELLS.map((f) => readFileSync(f));
    const byBuffer = await pool(bytes);
    const bySharp = await pool(sharp(CELLS[0]!));
    expect(byPath.map((r) => [r.defective, r.score])).toEqual(ref.map((r) => [r.defective, r.score]));
    expect(byBuffer.map((r) => r.score)).toEqual(ref.map((r) => r.score));
    expect(bySharp.score).toBe(ref[0]!.score);
    // the caller's Buffers were cloned, not moved: still readable
    expect(bytes[0]!.length).toBeGreaterThan(0);
  });
});
