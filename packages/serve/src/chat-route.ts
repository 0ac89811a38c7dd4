import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import type { ApiKey } from './auth.js';
import type { WorkQueue } from './work-queue.js';

/** One message as the chat backend takes it (images already decoded from data URIs into bytes). */
export interface BackendMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ({ type: 'text'; text: string } | { type: 'image'; image: Buffer })[];
}

/** Generation settings from the request. */
export interface BackendOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed?: number | undefined;
  onText?: (piece: string) => void;
}

/** A vision-language model behind /v1/chat/completions. */
export interface ChatBackend {
  name: string;
  complete(messages: BackendMessage[], options: BackendOptions): Promise<{
    text: string; finishReason: 'stop' | 'length'; usage: { promptTokens: number; completionTokens: number };
  }>;
}

/**
 * A {@link ChatBackend} over Kestrel's `ask` pipeline (DeepSeek-VL2 family checkpoint directory), loaded
 * once in a worker thread: generation never holds the server's event loop, and tokens stream back as
 * the worker picks them.
 */
export async function createVlmChatBackend(dir: string): Promise<ChatBackend> {
  const { pipeline } = await import('@kestrel/pipelines');
  const ask = await pipeline('ask', { model: dir, maxNewTokens: 4096 });
  const name = dir.split(/[\\/]/).filter(Boolean).pop() ?? 'vlm';
  return {
    name,
    async complete(messages, o) {
      const r = await ask.chat(messages, {
        maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP,
        ...(o.seed !== undefined ? { seed: o.seed } : {}), ...(o.onText ? { onText: o.onText } : {}),
      });
      return { text: r.text, finishReason: r.finishReason, usage: { promptTokens: r.usage.promptTokens, completionTokens: r.usage.completionTokens } };
    },
  };
}

const ImageUrlSchema = z.union([z.string(), z.object({ url: z.string(), detail: z.string().optional() })]);
const PartSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('image_url'), image_url: ImageUrlSchema }),
]);
const ChatRequestSchema = z.object({
  model: z.string().optional(),
  messages: z.array(z.object({
    role: z.enum(['system', 'user', 'assistant']),
    content: z.union([z.string(), z.array(PartSchema).min(1)]),
  }).loose()).min(1).max(64),
  stream: z.boolean().default(false),
  max_tokens: z.number().int().positive().max(4096).optional(),
  max_completion_tokens: z.number().int().positive().max(4096).optional(),
  temperature: z.number().min(0).max(2).default(0),
  top_p: z.number().gt(0).max(1).default(1),
  seed: z.number().int().optional(),
}).loose();

/** Only inline images: a request must never make the server read a file or fetch a URL. */
function dataUriBytes(url: string): Buffer {
  const m = /^data:image\/[\w.+-]+(;[\w=.+-]+)*;base64,([A-Za-z0-9+/]*={0,2})$/.exec(url);
  if (!m) throw new KestrelError('E_OPTIONS', 'image_url must be a data:image/...;base64, URI (URLs and file paths are not fetched)');
  const b = Buffer.from(m[2]!, 'base64');
  if (b.length === 0) throw new KestrelError('E_IMAGE_DECODE', 'image_url holds an empty image');
  return b;
}

/** Register POST /v1/chat/completions (OpenAI-compatible, with SSE streaming). */
export function registerChatRoute(app: FastifyInstance, o: {
  backend: ChatBackend | undefined;
  queue: WorkQueue;
  requireKey: (req: FastifyRequest) => ApiKey;
  isDraining: () => boolean;
  timeoutMs: number;
  bodyLimit: number;
  /** Free the request's in-progress slot (hijacked replies skip the onResponse hook). */
  release: (req: FastifyRequest) => void;
}): void {
  app.post('/v1/chat/completions', { bodyLimit: o.bodyLimit }, async (req, reply) => {
    o.requireKey(req);
    const backend = o.backend;
    if (!backend) {
      return reply.code(404).send({ error: { code: 'E_MODEL_NOT_FOUND', type: 'invalid_request_error', message: 'no vision-language model is configured on this server; start kestrel serve with --vlm DIR to enable /v1/chat/completions' } });
    }
    if (o.isDraining()) throw new KestrelError('E_UNSUPPORTED', 'the server is shutting down');
    const r = parseOptions(ChatRequestSchema, req.body, 'chat request');
    const messages: BackendMessage[] = r.messages.map((m) => ({
      role: m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.type === 'text'
        ? { type: 'text' as const, text: p.text }
        : { type: 'image' as const, image: dataUriBytes(typeof p.image_url === 'string' ? p.image_url : p.image_url.url) }),
    }));
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = backend.name;
    const gen = { maxNewTokens: r.max_completion_tokens ?? r.max_tokens ?? 256, temperature: r.temperature, topP: r.top_p, seed: r.seed };
    const finish = (f: 'stop' | 'length'): 'stop' | 'length' => f;

    if (!r.stream) {
      const { value } = await o.queue.push(() => backend.complete(messages, gen), o.timeoutMs);
      return reply.send({
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: value.text }, finish_reason: finish(value.finishReason) }],
        usage: { prompt_tokens: value.usage.promptTokens, completion_tokens: value.usage.completionTokens, total_tokens: value.usage.promptTokens + value.usage.completionTokens },
      });
    }
    // Streaming: queue first, so a full queue still answers a plain 429 before any SSE bytes.
    let started!: () => void;
    const startedP = new Promise<void>((res) => { started = res; });
    const raw = reply.raw;
    const chunk = (delta: Record<string, string>, finishReason: string | null): string =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;
    // Pieces generated before the SSE headers are out wait here.
    let early: string[] | null = [];
    const job = o.queue.push(async () => {
      started();
      return backend.complete(messages, { ...gen, onText: (t) => {
        if (early) early.push(t);
        else if (!raw.destroyed) raw.write(chunk({ content: t }, null));
      } });
    }, o.timeoutMs);
    await Promise.race([startedP, job]);
    reply.hijack();
    raw.once('close', () => o.release(req));
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    raw.write(chunk({ role: 'assistant', content: '' }, null));
    for (const t of early) raw.write(chunk({ content: t }, null));
    early = null;
    try {
      const { value } = await job;
      raw.write(chunk({}, finish(value.finishReason)));
    } catch (e) {
      const code = e instanceof KestrelError ? e.code : 'E_INTERNAL';
      raw.write(`data: ${JSON.stringify({ error: { code, message: (e as Error).message, type: 'server_error' } })}\n\n`);
    }
    raw.end('data: [DONE]\n\n');
    return reply;
  });
}
