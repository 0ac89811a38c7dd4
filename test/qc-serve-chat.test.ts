// POST /v1/chat/completions on the tiny DeepSeek-VL2-layout fixture model (test/fixtures/vlm/A).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseApiKeyFlag } from '../packages/serve/src/auth.js';
import { createVlmChatBackend, type ChatBackend } from '../packages/serve/src/chat-route.js';
import { InspectionLog } from '../packages/serve/src/inspection-log.js';
import { createServer, type KestrelServer } from '../packages/serve/src/server.js';

const VLM = resolve(import.meta.dirname, 'fixtures/vlm/A');
const KEY = 'chat-test-key-0123456789';
const AUTH = { authorization: `Bearer ${KEY}` };

describe('POST /v1/chat/completions with a VLM', () => {
  let dir: string;
  let s: KestrelServer;
  let backend: ChatBackend;
  let url: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kestrel-qc-chat-'));
    backend = await createVlmChatBackend(VLM);
    s = await createServer({ config: { port: 0, apiKeys: [parseApiKeyFlag(KEY)], queue: { concurrency: 1, maxQueued: 0 } }, log: InspectionLog.open(join(dir, 'log.db')), chat: backend });
    url = await s.listen();
  });
  afterAll(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const image = `data:image/png;base64,${readFileSync(join(VLM, 'img0.png')).toString('base64')}`;
  const messages = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: 'Describe the part.' }] }];

  it('answers in the OpenAI shape, the same text as chat() gives, and streams the same text as SSE', async () => {
    const direct = await backend.complete([{ role: 'user', content: [{ type: 'image', image: readFileSync(join(VLM, 'img0.png')) }, { type: 'text', text: 'Describe the part.' }] }], { maxNewTokens: 8, temperature: 0, topP: 1 });
    expect(direct.usage.completionTokens).toBeGreaterThan(0);
    expect(direct.text.length).toBeGreaterThan(0);
    const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', messages, max_tokens: 8 }) });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { object: string; choices: { message: { role: string; content: string }; finish_reason: string }[]; usage: { completion_tokens: number; prompt_tokens: number; total_tokens: number } };
    expect(body.object).toBe('chat.completion');
    expect(body.choices[0]!.message).toEqual({ role: 'assistant', content: direct.text });
    expect(body.usage.completion_tokens).toBe(direct.usage.completionTokens);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);

    const sr = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ messages, max_tokens: 8, stream: true }) });
    expect(sr.status).toBe(200);
    expect(sr.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = (await sr.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
    expect(events[events.length - 1]).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { object: string; choices: { delta: { content?: string }; finish_reason: string | null }[] });
    for (const c of chunks) expect(c.object).toBe('chat.completion.chunk');
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe(direct.text);
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe(body.choices[0]!.finish_reason);
  });

  it('streamed answers free their in-progress slot (12 in a row with room for 9)', async () => {
    for (let i = 0; i < 12; i++) {
      const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true }) });
      expect(r.status).toBe(200);
      expect((await r.text()).endsWith('data: [DONE]\n\n')).toBe(true);
    }
  });

  it('refuses URLs and file paths as images (nothing is fetched or read), and needs a key', async () => {
    for (const u of ['https://example.com/a.png', 'file:///etc/passwd', '/etc/passwd', 'data:text/plain;base64,aGk=']) {
      const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: u } }] }] }) });
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('E_OPTIONS');
    }
    const bad = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ messages: [] }) });
    expect(bad.status).toBe(400);
    const anon = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }) });
    expect(anon.status).toBe(401);
  });
});
