// Pipelines on a remote OpenAI-compatible server (`model: 'openai:URL'`), tested against a real
// `kestrel serve --vlm` process serving the golden checkpoint test/fixtures/vlm/A: the remote answer is
// the local model's answer, for the CLI and the SDK, greedy and sampled with a seed.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, request, type Server } from 'node:http';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline, type GroundResult } from '@kestrel/pipelines';
import { expectKestrelError, runKestrel, type CliRun } from './helpers/cli.js';

const VLM = resolve(import.meta.dirname, 'fixtures/vlm/A');
const IMG0 = join(VLM, 'img0.png');
const IMG1 = join(VLM, 'img1.png');
const BIN = resolve(import.meta.dirname, '../packages/cli/bin/kestrel.js');
const KEY = 'remote-model-key-0123456789';
const ENV = { ...process.env, KESTREL_OPENAI_API_KEY: KEY };

const kestrel = (args: string[], env: NodeJS.ProcessEnv = ENV): Promise<CliRun> => runKestrel(args, { env });
const failure = expectKestrelError;

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

// `ground` on the server: golden model A with the test tokenizer that has DeepSeek-VL2's grounding
// tokens (random weights: the request and the flow are asserted, and that the remote result is the
// local pipeline's, greedy).
describe("pipeline('ground') with model 'openai:URL' (kestrel serve --vlm on a grounding checkpoint)", () => {
  let dir: string;
  let model: string;
  let serve: ChildProcess;
  let proxy: Server;
  let base: string; // the proxy, which records the request bodies
  const bodies: { messages: { content: unknown }[]; skip_special_tokens?: unknown; max_tokens?: unknown }[] = [];
  const keyBefore = process.env.KESTREL_OPENAI_API_KEY;
  beforeAll(async () => {
    process.env.KESTREL_OPENAI_API_KEY = KEY;
    dir = mkdtempSync(join(tmpdir(), 'kestrel-remote-ground-'));
    model = join(dir, 'A-grounding');
    mkdirSync(model);
    for (const f of ['config.json', 'processor_config.json', 'model.safetensors']) copyFileSync(join(VLM, f), join(model, f));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(resolve(import.meta.dirname, 'fixtures/vlm-chat', f), join(model, f));
    serve = spawn(process.execPath, [BIN, 'serve', '--vlm', model, '--port', '0', '--host', '127.0.0.1', '--db', join(dir, 'log.db'), '--api-key', KEY], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = createInterface({ input: serve.stdout! });
    const url = await new Promise<string>((res, rej) => {
      lines.on('line', (l) => { try { const j = JSON.parse(l) as { event?: string; url?: string }; if (j.event === 'listening') res(j.url!); } catch { /* not the event line */ } });
      serve.once('exit', (c) => rej(new Error(`kestrel serve exited with ${c}`)));
    });
    proxy = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        if (req.method === 'POST') bodies.push(JSON.parse(body.toString()) as (typeof bodies)[number]);
        const target = new URL(req.url!, url);
        const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => { res.writeHead(r.statusCode!, r.headers); r.pipe(res); });
        up.end(body);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(proxy.address() as { port: number }).port}/v1`;
  }, 120_000);
  afterAll(async () => {
    if (keyBefore === undefined) delete process.env.KESTREL_OPENAI_API_KEY;
    else process.env.KESTREL_OPENAI_API_KEY = keyBefore;
    if (proxy) await new Promise((r) => proxy.close(r));
    if (serve && serve.exitCode === null) { serve.kill('SIGTERM'); await new Promise((r) => serve.once('exit', r)); }
    rmSync(dir, { recursive: true, force: true });
  });

  const same = (r: GroundResult, l: GroundResult): void => {
    expect(r.text).toBe(l.text);
    expect(r.detections).toEqual(l.detections);
    expect(r.flags).toEqual(l.flags);
    expect(r.usage.promptTokens).toBe(l.usage.promptTokens);
    expect(r.usage.completionTokens).toBe(l.usage.completionTokens);
  };

  it('sends the grounding prompt as text after the image, keeps special tokens, and gives the local result (one query, detect, caption mode)', async () => {
    const local = await pipeline('ground', { model, maxNewTokens: 24 });
    const remote = await pipeline('ground', { model: `openai:${base}`, maxNewTokens: 24 });
    try {
      expect(remote.remote).toEqual({ baseUrl: base, remoteModel: 'A-grounding' });
      const l = await local(IMG0, 'the gear');
      const r = await remote(IMG0, 'the gear');
      same(r, l);
      const sent = bodies.at(-1)!;
      expect(sent.skip_special_tokens).toBe(false);
      expect(sent.max_tokens).toBe(24);
      expect(sent.messages).toEqual([{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${readFileSync(IMG0).toString('base64')}` } }, { type: 'text', text: '<|ref|>the gear<|/ref|>.' }] }]);
      // sampled with a seed: an answer with grounding tags (special tokens), kept by the server
      const call = { temperature: 1.5, seed: 2, maxNewTokens: 48 };
      const ls = await local(IMG0, 'the gear', call);
      expect(ls.text).toContain('<|det|>');
      same(await remote(IMG0, 'the gear', call), ls);
      // detect: one request per category, the image read once; the local detections
      const n = bodies.length;
      const cats = ['gear', { id: 7, name: 'bolt' }];
      expect(await remote.detect(readFileSync(IMG1), cats)).toEqual(await local.detect(IMG1, cats));
      expect(bodies.length - n).toBe(2);
      await failure(remote.detect(IMG1, ['<|ref|>x']), 'E_OPTIONS');
      expect(bodies.length - n).toBe(2); // refused before anything was sent
      await failure(remote(IMG0, '  '), 'E_OPTIONS');
      await failure(Promise.resolve().then(() => remote.model), 'E_UNSUPPORTED');
    } finally {
      local.dispose();
      remote.dispose();
    }
    const lc = await pipeline('ground', { model, mode: 'caption', maxNewTokens: 16, frame: 'padded', inProcess: true });
    const rc = await pipeline('ground', { model: `openai:${base}`, remoteModel: 'A-grounding', mode: 'caption', maxNewTokens: 16, frame: 'padded', imageSize: lc.model.processor.imageSize });
    same(await rc(IMG1, 'Describe the image.'), await lc(IMG1, 'Describe the image.'));
    expect((bodies.at(-1)!.messages[0]!.content as { text?: string }[])[1]!.text).toBe('<|grounding|>Describe the image.');
    lc.dispose();
    await failure(pipeline('ground', { model: `openai:${base}`, frame: 'padded' }), 'E_OPTIONS');
    await failure(pipeline('ground', { model: `openai:${base}`, threads: 2 }), 'E_OPTIONS');
  }, 180_000);

  it('kestrel ground --model openai:URL prints the local result', async () => {
    const args = ['--image', IMG0, '--max-new-tokens', '20', '--json', 'the gear'];
    const local = await kestrel(['ground', '--model', model, ...args]);
    const remote = await kestrel(['ground', '--model', `openai:${base}`, ...args]);
    expect(local.code, local.err).toBe(0);
    expect(remote.code, remote.err).toBe(0);
    const [l, r] = [JSON.parse(local.out) as GroundResult, JSON.parse(remote.out) as GroundResult];
    expect({ ...r, usage: null }).toEqual({ ...l, usage: null });
  }, 120_000);
});
