import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import type { ApiKey } from './auth.js';
import type { BackendMessage, ChatBackend } from './chat-backend.js';
import { HttpError } from './http-error.js';
import { probeImage } from './inspector.js';
import type { WorkQueue } from './work-queue.js';

export { createVlmChatBackend, type BackendMessage, type BackendOptions, type ChatBackend } from './chat-backend.js';

const ImageUrlSchema = z.union([z.string(), z.object({ url: z.string(), detail: z.string().optional() })]);
const PartSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text'), text: z.string() }),
  z.object({ type: z.literal('image_url'), image_url: ImageUrlSchema }),
]);
const ChatRequestSchema = z.object({
  model: z.string().optional(),
  messages: z.array(z.object({
    // `developer` is the API's newer name for `system` (o1 and later); it is treated as system.
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(PartSchema).min(1)]),
  }).loose()).min(1).max(64),
  stream: z.boolean().default(false),
  stream_options: z.object({ include_usage: z.boolean().optional() }).loose().nullable().optional(),
  n: z.number().int().positive().nullable().optional(),
  max_tokens: z.number().int().positive().max(4096).nullable().optional(),
  max_completion_tokens: z.number().int().positive().max(4096).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  /** not in the OpenAI API; vLLM and SGLang take it too */
  top_k: z.number().int().min(0).nullable().optional(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  /** not in the OpenAI API; vLLM's extension (false keeps special tokens such as `<|ref|>` in the answer) */
  skip_special_tokens: z.boolean().nullable().optional(),
}).loose();

/** Only inline images: a request must never make the server read a file or fetch a URL. */
function dataUriBytes(url: string): Buffer {
  const m = /^data:image\/[\w.+-]+(;[\w=.+-]+)*;base64,([A-Za-z0-9+/]*={0,2})$/.exec(url);
  if (!m) throw new KestrelError('E_OPTIONS', 'image_url must be a data:image/...;base64, URI (URLs and file paths are not fetched)');
  const b = Buffer.from(m[2]!, 'base64');
  if (b.length === 0) throw new KestrelError('E_IMAGE_DECODE', 'image_url holds an empty image');
  return b;
}

/** The OpenAI model object of the loaded model. */
function modelObject(backend: ChatBackend, created: number): { id: string; object: 'model'; created: number; owned_by: string } {
  return { id: backend.name, object: 'model', created, owned_by: 'kestrel' };
}

function modelNotFound(name: string, backend: ChatBackend | undefined): HttpError {
  const serves = backend ? `it serves "${backend.name}" (GET /v1/models lists it)` : 'no chat model is loaded (start kestrel serve with --vlm DIR)';
  return new HttpError(404, 'model_not_found', `The model "${name}" does not exist on this server: ${serves}.`);
}

/**
 * Register POST /v1/chat/completions (OpenAI-compatible, with SSE streaming) and GET /v1/models. The
 * `model` a request names must be the loaded model's name (its folder name) or an alias (the `--vlm`
 * path as given); leaving it out means the loaded model. Images are checked against `maxImagePixels`,
 * and a streamed request is answered with a plain 4xx for anything found wrong before generation starts.
 */
export function registerChatRoute(app: FastifyInstance, o: {
  backend: ChatBackend | undefined;
  queue: WorkQueue;
  requireKey: (req: FastifyRequest) => ApiKey;
  isDraining: () => boolean;
  timeoutMs: number;
  bodyLimit: number;
  /** Largest image in pixels (the server's `maxImagePixels`). */
  maxImagePixels: number;
  /** Free the request's in-progress slot (hijacked replies skip the onResponse hook). */
  release: (req: FastifyRequest) => void;
}): void {
  const loadedAt = Math.floor(Date.now() / 1000);
  const backend = o.backend;
  const known = (name: string): boolean => backend !== undefined && (name === backend.name || (backend.aliases ?? []).includes(name));

  app.get('/v1/models', async (req) => {
    o.requireKey(req);
    return { object: 'list', data: backend ? [modelObject(backend, loadedAt)] : [] };
  });
  app.get<{ Params: { '*': string } }>('/v1/models/*', async (req) => {
    o.requireKey(req);
    const name = decodeURIComponent(req.params['*']);
    if (!known(name)) throw modelNotFound(name, backend);
    return modelObject(backend!, loadedAt);
  });

  app.post('/v1/chat/completions', { bodyLimit: o.bodyLimit }, async (req, reply) => {
    o.requireKey(req);
    if (!backend) {
      return reply.code(404).send({ error: { code: 'E_MODEL_NOT_FOUND', type: 'invalid_request_error', message: 'no vision-language model is configured on this server; start kestrel serve with --vlm DIR to enable /v1/chat/completions' } });
    }
    if (o.isDraining()) throw new KestrelError('E_UNSUPPORTED', 'the server is shutting down');
    const r = parseOptions(ChatRequestSchema, req.body, 'chat request');
    if (r.model !== undefined && !known(r.model)) throw modelNotFound(r.model, backend);
    if (r.n != null && r.n !== 1) throw new KestrelError('E_OPTIONS', `chat request: n must be 1 (got ${r.n}); this server returns one choice per request: send ${r.n} requests with different seeds instead`);
    const messages: BackendMessage[] = r.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.type === 'text'
        ? { type: 'text' as const, text: p.text }
        : { type: 'image' as const, image: dataUriBytes(typeof p.image_url === 'string' ? p.image_url : p.image_url.url) }),
    }));
    // Header checks (format, PNG chunks, pixel count) before the request takes a queue slot.
    for (const m of messages) if (typeof m.content !== 'string') for (const p of m.content) if (p.type === 'image') await probeImage(p.image, o.maxImagePixels);
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = backend.name;
    const gen = {
      maxNewTokens: r.max_completion_tokens ?? r.max_tokens ?? 256, temperature: r.temperature ?? 0, topP: r.top_p ?? 1,
      seed: r.seed ?? undefined, maxImagePixels: o.maxImagePixels, topK: r.top_k ?? 0, skipSpecialTokens: r.skip_special_tokens ?? undefined,
      stopStrings: r.stop == null ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop,
    };
    const usageOf = (u: { promptTokens: number; completionTokens: number }) => ({ prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens });

    if (!r.stream) {
      const { value } = await o.queue.push(() => backend.complete(messages, gen), o.timeoutMs);
      return reply.send({
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: value.text }, finish_reason: value.finishReason }],
        usage: usageOf(value.usage),
      });
    }
    // Streaming: the SSE headers go out only once the backend has decoded the images and built the
    // prompt (onStart), so a bad image, a bad conversation or a full queue is still a plain 4xx.
    const includeUsage = r.stream_options?.include_usage === true;
    let started!: () => void;
    const startedP = new Promise<void>((res) => { started = res; });
    const raw = reply.raw;
    const frame = (o2: Record<string, unknown>): string => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, ...o2 })}\n\n`;
    const chunk = (delta: Record<string, string>, finishReason: string | null): string =>
      frame({ choices: [{ index: 0, delta, finish_reason: finishReason }], ...(includeUsage ? { usage: null } : {}) });
    // Pieces generated before the SSE headers are out wait here.
    let early: string[] | null = [];
    const job = o.queue.push(() => backend.complete(messages, {
      ...gen,
      onStart: () => started(),
      onText: (t) => {
        started(); // a backend that never calls onStart starts the stream at its first piece
        if (early) early.push(t);
        else if (!raw.destroyed) raw.write(chunk({ content: t }, null));
      },
    }), o.timeoutMs);
    await Promise.race([startedP, job]);
    reply.hijack();
    raw.once('close', () => o.release(req));
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    raw.write(chunk({ role: 'assistant', content: '' }, null));
    for (const t of early) raw.write(chunk({ content: t }, null));
    early = null;
    try {
      const { value } = await job;
      raw.write(chunk({}, value.finishReason));
      if (includeUsage) raw.write(frame({ choices: [], usage: usageOf(value.usage) }));
    } catch (e) {
      const code = e instanceof KestrelError ? e.code : 'E_INTERNAL';
      raw.write(`data: ${JSON.stringify({ error: { code, message: (e as Error).message, type: 'server_error' } })}\n\n`);
    }
    raw.end('data: [DONE]\n\n');
    return reply;
  });
}
