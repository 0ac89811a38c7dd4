// /v1/chat/completions and /v1/models driven by the official `openai` npm client (dev dependency,
// pinned) against a real server on a loopback port with the golden VLM checkpoint test/fixtures/vlm/A.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import OpenAI, { APIError } from 'openai';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, VisionLanguageModel } from '@kestrel/pipelines';
import { parseApiKeyFlag } from '../packages/serve/src/auth.js';
import { createVlmChatBackend } from '../packages/serve/src/chat-route.js';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { createServer, type KestrelServer } from '../packages/serve/src/server.js';

const VLM = resolve(import.meta.dirname, 'fixtures/vlm/A');
const PNG_SUITE = resolve(import.meta.dirname, 'fixtures/png-suite');
const KEY = 'openai-client-key-0123456789';
const MAX_PIXELS = 150 * 120; // img0 (150x90) and img1 (72x120) fit; a 200x200 image does not
const dataUrl = (b: Buffer, type = 'image/png'): string => `data:${type};base64,${b.toString('base64')}`;
const IMG0 = readFileSync(join(VLM, 'img0.png'));

type Msg = OpenAI.Chat.Completions.ChatCompletionMessageParam;
const userWith = (image: string, text = 'Describe the part.'): Msg => ({ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text }] });

async function apiError(p: Promise<unknown>): Promise<APIError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(APIError);
  return e as APIError;
}

describe('the chat endpoint with the official openai client', () => {
  let dir: string;
  let s: KestrelServer;
  let url: string;
  let client: OpenAI;
  let local: VisionLanguageModel;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kestrel-openai-'));
    s = await createServer({ config: { port: 0, apiKeys: [parseApiKeyFlag(KEY)], maxImagePixels: MAX_PIXELS, queue: { concurrency: 1, maxQueued: 4 } }, log: InspectionLog.open(join(dir, 'log.db')), chat: await createVlmChatBackend(VLM) });
    url = await s.listen();
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 });
    local = await VisionLanguageModel.load(VLM);
  });
  afterAll(async () => {
    local?.dispose();
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists the model; an unknown model is 404 model_not_found; the folder name and the path are accepted', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['A']);
    expect((await client.models.retrieve('A')).id).toBe('A');
    const e = await apiError(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }));
    expect(e.status).toBe(404);
    expect(e.code).toBe('model_not_found');
    expect(e.message).toContain('"A"');
    const es = await apiError(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true }));
    expect([es.status, es.code]).toEqual([404, 'model_not_found']);
    for (const model of ['A', VLM]) expect((await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })).model).toBe('A');
  });

  it('answers what chat() on the same checkpoint answers, streamed and not, with usage (include_usage)', async () => {
    const ref = await chat(local, [{ role: 'user', content: [{ type: 'image', image: IMG0 }, { type: 'text', text: 'Describe the part.' }] }], { maxNewTokens: 8 });
    const r = await client.chat.completions.create({ model: 'A', messages: [userWith(dataUrl(IMG0))], max_tokens: 8 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0]!.message.content).toBe(ref.text);
    expect(r.choices[0]!.finish_reason).toBe(ref.finishReason);
    expect(r.usage).toEqual({ prompt_tokens: ref.usage.promptTokens, completion_tokens: ref.usage.completionTokens, total_tokens: ref.usage.promptTokens + ref.usage.completionTokens });

    const stream = await client.chat.completions.create({ model: 'A', messages: [userWith(dataUrl(IMG0))], max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) { chunks.push(c); text += c.choices[0]?.delta.content ?? ''; }
    expect(text).toBe(ref.text);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(r.usage);
    expect(chunks[chunks.length - 2]!.choices[0]!.finish_reason).toBe(ref.finishReason);
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();

    // Without include_usage there is no usage chunk.
    const plain = await client.chat.completions.create({ model: 'A', messages: [userWith(dataUrl(IMG0))], max_tokens: 8, stream: true });
    const seen: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of plain) seen.push(c);
    expect(seen.every((c) => c.choices.length === 1 && c.usage === undefined)).toBe(true);
  });

  it('a sampled answer with a seed is the same as chat() with that seed', async () => {
    const ref = await chat(local, [{ role: 'user', content: 'Say something.' }], { maxNewTokens: 8, temperature: 0.9, topP: 0.95, seed: 7 });
    const r = await client.chat.completions.create({ model: 'A', messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 8, temperature: 0.9, top_p: 0.95, seed: 7 });
    expect(r.choices[0]!.message.content).toBe(ref.text);
  });

  it('treats the developer role as system', async () => {
    const ask = (role: 'system' | 'developer') => client.chat.completions.create({ model: 'A', messages: [{ role, content: 'Answer briefly.' }, { role: 'user', content: 'What is it?' }], max_tokens: 6 });
    const ref = await chat(local, [{ role: 'system', content: 'Answer briefly.' }, { role: 'user', content: 'What is it?' }], { maxNewTokens: 6 });
    expect((await ask('developer')).choices[0]!.message.content).toBe(ref.text);
    expect((await ask('system')).choices[0]!.message.content).toBe(ref.text);
  });

  it('n: 2 is a 400 (one choice per request), n: 1 is fine', async () => {
    const e = await apiError(client.chat.completions.create({ model: 'A', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, n: 2 }));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/n must be 1/);
    expect((await client.chat.completions.create({ model: 'A', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, n: 1 })).choices).toHaveLength(1);
  });

  it("checks images against the server's maxImagePixels", async () => {
    const big = await sharp({ create: { width: 200, height: 200, channels: 3, background: '#808080' } }).png().toBuffer();
    for (const stream of [false, true]) {
      const e = await apiError(client.chat.completions.create({ model: 'A', messages: [userWith(dataUrl(big))], max_tokens: 2, stream }));
      expect([e.status, e.code]).toEqual([422, 'E_IMAGE_TOO_LARGE']);
      expect(e.message).toContain(String(MAX_PIXELS));
    }
  });

  it('stream: true answers a bad image or conversation with a 4xx before any byte, and /metrics counts it as such', async () => {
    const metric = async (status: string): Promise<number> => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const m = new RegExp(`^kestrel_http_requests_total\\{route="/v1/chat/completions",status="${status}"\\} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    const before = await metric('422');
    const crc = readFileSync(join(PNG_SUITE, 'x-crc-idat.png')); // caught by the header probe
    const adler = readFileSync(join(PNG_SUITE, 'x-adler.png')); // caught only when decoded
    const jpeg = await sharp(IMG0).jpeg().toBuffer();
    const cut = jpeg.subarray(0, Math.floor(jpeg.length * 0.6)); // header fine, pixels missing
    for (const img of [dataUrl(crc), dataUrl(adler), dataUrl(cut, 'image/jpeg')]) {
      const e = await apiError(client.chat.completions.create({ model: 'A', messages: [userWith(img)], max_tokens: 2, stream: true }));
      expect([e.status, e.code]).toEqual([422, 'E_IMAGE_DECODE']);
    }
    expect(await metric('422')).toBe(before + 3);
    // A conversation the template cannot take (two user turns) is a 400, also before any byte.
    const e = await apiError(client.chat.completions.create({ model: 'A', messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], max_tokens: 2, stream: true }));
    expect([e.status, e.code]).toEqual([400, 'E_OPTIONS']);
  });
});
