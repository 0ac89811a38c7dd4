// Pipelines on a remote OpenAI-compatible server (`model: 'openai:URL'`), tested against a real
// `kestrel serve --vlm` process serving the golden checkpoint test/fixtures/vlm/A: the remote answer is
// the local model's answer, for the CLI and the SDK, greedy and sampled with a seed.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, request, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KestrelError } from '@kestrel/core';
import { pipeline } from '@kestrel/pipelines';

const VLM = resolve(import.meta.dirname, 'fixtures/vlm/A');
const IMG0 = join(VLM, 'img0.png');
const IMG1 = join(VLM, 'img1.png');
const BIN = resolve(import.meta.dirname, '../packages/cli/bin/kestrel.js');
const KEY = 'remote-model-key-0123456789';
const ENV = { ...process.env, KESTREL_OPENAI_API_KEY: KEY };

function kestrel(args: string[], env: NodeJS.ProcessEnv = ENV): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000, env }, (e, out, err) => done({ code: e ? Number(e.code) : 0, out, err }));
  });
}

async function failure(p: Promise<unknown>, code: string): Promise<KestrelError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(KestrelError);
  expect((e as KestrelError).code).toBe(code);
  return e as KestrelError;
}

describe('remote models on kestrel serve --vlm (a real server process and the golden checkpoint)', () => {
  let dir: string;
  let serve: ChildProcess;
  let base: string; // http://127.0.0.1:PORT/v1
  const keyBefore = process.env.KESTREL_OPENAI_API_KEY;
  beforeAll(async () => {
    process.env.KESTREL_OPENAI_API_KEY = KEY; // for the in-process pipelines
    dir = mkdtempSync(join(tmpdir(), 'kestrel-remote-'));
    serve = spawn(process.execPath, [BIN, 'serve', '--vlm', VLM, '--port', '0', '--host', '127.0.0.1', '--db', join(dir, 'log.db'), '--api-key', KEY], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = createInterface({ input: serve.stdout! });
    const url = await new Promise<string>((res, rej) => {
      lines.on('line', (l) => { try { const j = JSON.parse(l) as { event?: string; url?: string }; if (j.event === 'listening') res(j.url!); } catch { /* not the event line */ } });
      serve.once('exit', (c) => rej(new Error(`kestrel serve exited with ${c}`)));
    });
    base = `${url}/v1`;
  }, 120_000);
  afterAll(async () => {
    if (keyBefore === undefined) delete process.env.KESTREL_OPENAI_API_KEY;
    else process.env.KESTREL_OPENAI_API_KEY = keyBefore;
    if (serve && serve.exitCode === null) { serve.kill('SIGTERM'); await new Promise((r) => serve.once('exit', r)); }
    rmSync(dir, { recursive: true, force: true });
  });

  it('kestrel ask --model openai:URL gives the text of the local model (greedy, and sampled with the same seed)', async () => {
    for (const flags of [['--max-new-tokens', '8'], ['--max-new-tokens', '12', '--temperature', '0.8', '--top-p', '0.9', '--top-k', '40', '--seed', '11']]) {
      const args = ['--image', IMG0, ...flags, 'Describe the part.'];
      const local = await kestrel(['ask', '--model', VLM, ...args]);
      const remote = await kestrel(['ask', '--model', `openai:${base}`, ...args]);
      expect(local.code, local.err).toBe(0);
      expect(remote.code, remote.err).toBe(0);
      expect(local.out.trim().length).toBeGreaterThan(0);
      expect(remote.out).toBe(local.out);
      expect(remote.err).toContain(`on ${base}`);
    }
    // Two images in one prompt, --json.
    const args = ['--image', IMG0, '--image', IMG1, '--max-new-tokens', '6', '--json', 'Compare them.'];
    const [l, r] = [JSON.parse((await kestrel(['ask', '--model', VLM, ...args])).out) as { text: string; usage: { promptTokens: number } }, JSON.parse((await kestrel(['ask', '--model', `openai:${base}`, '--remote-model', 'A', ...args])).out) as { text: string; usage: { promptTokens: number } }];
    expect(r.text).toBe(l.text);
    expect(r.usage.promptTokens).toBe(l.usage.promptTokens);
  }, 240_000);

  it('kestrel caption --model openai:URL gives the local captions', async () => {
    const args = ['--max-new-tokens', '6', '--json', IMG0, IMG1];
    const local = await kestrel(['caption', '--model', VLM, ...args]);
    const remote = await kestrel(['caption', '--model', `openai:${base}`, ...args]);
    expect(remote.code, remote.err).toBe(0);
    expect(JSON.parse(remote.out)).toEqual(JSON.parse(local.out));
  }, 120_000);

  it("pipeline('ask' | 'caption' | 'chat') with model 'openai:URL': the local answers, streamed and not", async () => {
    const local = await pipeline('ask', { model: VLM, maxNewTokens: 8 });
    const remote = await pipeline('ask', { model: `openai:${base}`, remoteModel: 'A', maxNewTokens: 8 });
    try {
      expect(remote.remote).toEqual({ baseUrl: base, remoteModel: 'A' });
      const l = await local([IMG0], 'What is it?');
      const r = await remote(readFileSync(IMG0), 'What is it?'); // bytes are sent as they are
      expect(r.text).toBe(l.text);
      expect(r.usage.promptTokens).toBe(l.usage.promptTokens);
      expect(r.usage.completionTokens).toBe(l.usage.completionTokens);
      const pieces: string[] = [];
      const gen = remote.stream(IMG0, 'What is it?');
      let n = await gen.next();
      while (!n.done) { pieces.push(n.value); n = await gen.next(); }
      expect(pieces.join('')).toBe(l.text);
      expect(n.value.text).toBe(l.text);
      // Decoded pixels are sent as lossless PNG: the same answer.
      const { loadImage } = await import('@kestrel/core');
      expect((await remote(await loadImage(IMG0), 'What is it?')).text).toBe(l.text);
      await failure(Promise.resolve().then(() => remote.model), 'E_UNSUPPORTED');
    } finally {
      local.dispose();
      remote.dispose();
    }
    const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: [{ type: 'image' as const, image: IMG1 }, { type: 'text' as const, text: 'Any defect?' }] }];
    const lc = await pipeline('chat', { model: VLM, maxNewTokens: 7, temperature: 0.7, seed: 3 });
    const rc = await pipeline('chat', { model: `openai:${base}`, maxNewTokens: 7, temperature: 0.7, seed: 3 }); // the server's only model
    expect(rc.remote?.remoteModel).toBe('A');
    const want = (await lc(messages)).text;
    expect((await rc(messages)).text).toBe(want);
    expect((await rc(messages, { onText: () => undefined })).text).toBe(want);
    lc.dispose();
    const lcap = await pipeline('caption', { model: VLM, maxNewTokens: 5 });
    const rcap = await pipeline('caption', { model: `openai:${base}`, maxNewTokens: 5 });
    expect(await rcap([IMG0, IMG1])).toEqual(await lcap([IMG0, IMG1]));
    lcap.dispose();
  }, 120_000);

  it('errors: unknown model, no API key, a corrupt image (refused before sending), an abort', async () => {
    await failure(pipeline('ask', { model: `openai:${base}`, remoteModel: 'gpt-4o' }).then((a) => a(IMG0, 'hi')), 'E_MODEL_NOT_FOUND');
    const env = process.env.KESTREL_OPENAI_API_KEY;
    delete process.env.KESTREL_OPENAI_API_KEY;
    try {
      const e = await failure(pipeline('ask', { model: `openai:${base}`, remoteModel: 'A' }).then((a) => a(IMG0, 'hi')), 'E_OPTIONS');
      expect(e.message).toContain('$KESTREL_OPENAI_API_KEY');
    } finally {
      if (env !== undefined) process.env.KESTREL_OPENAI_API_KEY = env;
    }
    process.env.OTHER_KEY_FOR_TEST = KEY;
    const ask = await pipeline('ask', { model: `openai:${base}`, remoteModel: 'A', apiKeyEnv: 'OTHER_KEY_FOR_TEST', maxNewTokens: 4 });
    expect((await ask(IMG0, 'hi')).text.length).toBeGreaterThanOrEqual(0);
    const e = await failure(ask(readFileSync(resolve(import.meta.dirname, 'fixtures/png-suite/x-crc-idat.png')), 'hi'), 'E_IMAGE_DECODE');
    expect(e.message).toContain('CRC');
    const ac = new AbortController();
    ac.abort();
    await failure(ask(IMG0, 'hi', { signal: ac.signal }), 'E_ABORTED');
    await failure(pipeline('ask', { model: VLM, remoteModel: 'A' }), 'E_OPTIONS');
    await failure(pipeline('ask', { model: 'openai:not a url' }), 'E_OPTIONS');
    const local = await failure(pipeline('caption', { model: `openai:${base}`, dtype: 'int8' }), 'E_OPTIONS');
    expect(local.message).toContain('dtype only apply to a local checkpoint');
  }, 60_000);

  it('retries 429 and 503 with backoff (a proxy in front of the server refuses the first tries), and times out', async () => {
    let refusals = 2;
    const seen: number[] = [];
    const proxy: Server = createHttpServer((req, res) => {
      seen.push(Date.now());
      if (refusals > 0) {
        res.writeHead(refusals-- === 2 ? 429 : 503, { 'content-type': 'application/json', 'retry-after': '0' });
        res.end(JSON.stringify({ error: { code: 'E_QUEUE_FULL', message: 'busy' } }));
        return;
      }
      const target = new URL(req.url!, base);
      const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => { res.writeHead(r.statusCode!, r.headers); r.pipe(res); });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as { port: number }).port;
    const proxied = `http://127.0.0.1:${port}/v1`;
    try {
      // base is http://127.0.0.1:PORT/v1; the proxy forwards the same paths.
      const ask = await pipeline('ask', { model: `openai:${proxied}`, remoteModel: 'A', maxNewTokens: 6, retryBaseMs: 50 });
      const local = await pipeline('ask', { model: VLM, maxNewTokens: 6 });
      expect((await ask(IMG0, 'What is it?')).text).toBe((await local(IMG0, 'What is it?')).text);
      local.dispose();
      expect(seen).toHaveLength(3);
      refusals = 5;
      const few = await pipeline('ask', { model: `openai:${proxied}`, remoteModel: 'A', maxRetries: 1, retryBaseMs: 10 });
      const e = await failure(few(IMG0, 'hi'), 'E_BACKEND_UNAVAILABLE');
      expect(e.message).toMatch(/answered (429|503)/);
    } finally {
      await new Promise((r) => proxy.close(r));
    }
    // A server that never answers: the call fails at timeoutMs.
    const silent: Server = createHttpServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const t0 = Date.now();
      const slow = await pipeline('ask', { model: `openai:http://127.0.0.1:${(silent.address() as { port: number }).port}/v1`, remoteModel: 'A', timeoutMs: 300 });
      const e = await failure(slow(IMG0, 'hi'), 'E_BACKEND_UNAVAILABLE');
      expect(e.message).toContain('within 300 ms');
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  }, 60_000);
});
