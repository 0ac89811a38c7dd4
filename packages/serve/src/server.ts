import { createHash, randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { z } from 'zod';
import { KestrelError, isKestrelError, parseOptions } from '@kestrel/core';
import { authenticate, mayUseStation, type ApiKey } from './auth.js';
import { checkArchiveDir, extensionFor, writeFileAtomic } from './archive.js';
import { PartIdSchema, ServeConfigSchema, StationSchema, type ServeConfig, type ServeConfigInput } from './config.js';
import type { InspectionJobQueue, InspectionStore } from './scale-out.js';
import { probeImage, type Inspector, type Verdict } from './inspector.js';
import { Metrics } from './metrics.js';
import { statsReport } from './stats.js';
import { QueueError, WorkQueue } from './work-queue.js';
import { registerChatRoute, type ChatBackend } from './chat-route.js';
import { HttpError } from './http-error.js';
import { warmUpImage } from './warm-up.js';

/** Error codes the server answers with, beyond KestrelError's. */
export type ServeErrorCode = 'E_CONFLICT' | 'E_UNAUTHORIZED' | 'E_FORBIDDEN' | 'E_PAYLOAD_TOO_LARGE' | 'E_UNSUPPORTED_MEDIA_TYPE' | 'E_QUEUE_FULL' | 'E_TIMEOUT' | 'E_SHUTTING_DOWN' | 'E_NOT_FOUND' | 'E_BAD_REQUEST';

/** Body of every error answer: `{ error: { code, message } }` (the OpenAI error shape, with a stable code). */
export interface ErrorBody {
  error: { code: string; message: string; type: string };
}

/** Answer of POST /v1/inspect. */
export interface InspectResponse {
  id: string;
  verdict: Verdict;
  score: number;
  threshold: number;
  defects: { label: string; score: number; box?: [number, number, number, number] }[];
  model: { name: string; version: string };
  station: string;
  partId: string | null;
  /** Request received to answer ready, milliseconds. */
  ms: number;
}

/** What {@link createServer} needs. */
export interface ServerDeps {
  config: ServeConfigInput;
  /** The inspection log (InspectionLog on SQLite, or another InspectionStore). */
  log: InspectionStore;
  /** The inspection model; without one (and without `jobs`), /v1/inspect answers 503. */
  inspector?: Inspector | undefined;
  /**
   * A queue shared with worker processes (BullMQ on Redis): when given, this server is a frontend that
   * enqueues each inspection and answers with the row its worker committed; `inspector` is not used.
   */
  jobs?: InspectionJobQueue | undefined;
  /** The chat model; without one, /v1/chat/completions answers 404. */
  chat?: ChatBackend | undefined;
}

/** Options of {@link createServer} (the same object as {@link ServerDeps}). */
export type ServerOptions = ServerDeps;

/** A running (or ready-to-listen) server. */
export interface KestrelServer {
  app: FastifyInstance;
  config: ServeConfig;
  queue: WorkQueue;
  metrics: Metrics;
  /**
   * Run the model on a few synthetic images through the queue (nothing is logged): the first calls of
   * a model are slow (kernel set-up), and the queue learns a run time to refuse work it cannot start
   * in time. Resolves to the run times, ms.
   */
  warmUp(runs?: number): Promise<number[]>;
  /** Listen on config.host:config.port; resolves to the URL. */
  listen(): Promise<string>;
  /**
   * Graceful shutdown: stop accepting, let every accepted request finish (its record committed, its
   * answer sent), then close the log. Bounded by `shutdownTimeoutMs`.
   */
  close(): Promise<void>;
}

const STATUS: Partial<Record<string, number>> = {
  E_OPTIONS: 400, E_BAD_REQUEST: 400, E_DATA_FORMAT: 400, E_CONFLICT: 409,
  E_UNAUTHORIZED: 401, E_FORBIDDEN: 403, E_NOT_FOUND: 404, E_MODEL_NOT_FOUND: 404,
  E_PAYLOAD_TOO_LARGE: 413, E_UNSUPPORTED_MEDIA_TYPE: 415,
  E_IMAGE_DECODE: 422, E_IMAGE_TOO_LARGE: 422, E_IMAGE_TOKENS: 422,
  E_QUEUE_FULL: 429, E_UNSUPPORTED: 501,
  E_TIMEOUT: 503, E_SHUTTING_DOWN: 503, E_BACKEND_UNAVAILABLE: 503, E_WORKER_CRASHED: 503,
};

export { HttpError } from './http-error.js';

function body(code: string, message: string): ErrorBody {
  return { error: { code, message, type: code === 'E_INTERNAL' ? 'server_error' : 'invalid_request_error' } };
}

/** Epoch ms from an ISO date or a number of ms. */
const TimeSchema = z.union([z.string().regex(/^\d{1,15}$/).transform(Number), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)), z.iso.date().transform((s) => Date.parse(s))]);

const ListQuerySchema = z.object({
  station: StationSchema.optional(),
  verdict: z.enum(['OK', 'NG']).optional(),
  since: TimeSchema.optional(),
  until: TimeSchema.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(64).optional(),
}).strict();

const StatsQuerySchema = z.object({
  station: StationSchema.optional(),
  window: z.coerce.number().int().positive().max(366 * 86400).optional(),
}).strict();

const InspectQuerySchema = z.object({ station: StationSchema.optional(), partId: PartIdSchema.optional() }).strict();

const InspectJsonSchema = z.object({
  /** base64 bytes, or a `data:image/...;base64,` URI */
  image: z.string().min(1),
  station: StationSchema,
  partId: PartIdSchema.optional(),
}).strict();

function decodeBase64Image(s: string): Buffer {
  const m = /^data:([\w.+-]+\/[\w.+-]+)?(;[\w=.+-]+)*;base64,/.exec(s);
  const b64 = m ? s.slice(m[0].length) : s;
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(b64)) throw new KestrelError('E_OPTIONS', 'image: not base64 (send raw bytes with Content-Type image/*, multipart, or base64 in JSON)');
  return Buffer.from(b64, 'base64');
}

function parseQuery<S extends z.ZodType>(schema: S, q: unknown, what: string): z.output<S> {
  return parseOptions(schema, q ?? {}, what);
}

/**
 * Build the `kestrel serve` HTTP server (fastify): inspection, log queries, stats, metrics, health and
 * the OpenAI-compatible chat route. Every request except /healthz and /metrics needs an API key.
 */
export async function createServer(deps: ServerDeps): Promise<KestrelServer> {
  const config = parseOptions(ServeConfigSchema, deps.config, 'serve config');
  if (config.archiveNgDir) checkArchiveDir(config.archiveNgDir);
  const { log, inspector } = deps;
  const keys: ApiKey[] = config.apiKeys;
  const queue = new WorkQueue(config.queue.concurrency, config.queue.maxQueued);
  const metrics = new Metrics();
  let draining = false;
  const startedAt = Date.now();

  const app = Fastify({
    logger: false,
    bodyLimit: config.bodyLimitBytes,
    // Slow or stalled uploads are cut off rather than holding a socket forever.
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.requestTimeoutMs * 2,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    genReqId: () => randomUUID(),
  });

  metrics.gauge('kestrel_queue_depth', 'Inspections waiting for a worker.', () => queue.depth);
  metrics.gauge('kestrel_queue_active', 'Inspections running now.', () => queue.active);
  metrics.gauge('process_resident_memory_bytes', 'Resident set size in bytes.', () => process.memoryUsage.rss());
  metrics.gauge('process_start_time_seconds', 'Start time of the process since the epoch, seconds.', () => Math.floor(startedAt / 1000));

  // Raw image bodies; the JSON limit is larger (base64), so raw parsers carry the image limit themselves.
  const jsonLimit = Math.ceil((config.bodyLimitBytes * 4) / 3) + 64 * 1024;
  app.addContentTypeParser(/^image\/[\w.+-]+$/i, { parseAs: 'buffer', bodyLimit: config.bodyLimitBytes }, (_req, b, done) => done(null, b));
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: config.bodyLimitBytes }, (_req, b, done) => done(null, b));
  await app.register(multipart, { limits: { fileSize: config.bodyLimitBytes, files: 1, fields: 8, fieldSize: 1024, parts: 9 } });

  app.setErrorHandler((err: unknown, req, reply) => {
    let status = 500, code = 'E_INTERNAL', message = 'internal error';
    if (err instanceof HttpError) { status = err.status; code = err.code; message = err.message; }
    else if (isKestrelError(err)) { code = err.code; status = STATUS[code] ?? 500; message = err.message; }
    else if (err instanceof QueueError) {
      if (err.reason === 'full') { status = 429; code = 'E_QUEUE_FULL'; void reply.header('retry-after', '1'); }
      else if (err.reason === 'timeout') { status = 503; code = 'E_TIMEOUT'; }
      else { status = 503; code = 'E_SHUTTING_DOWN'; }
      message = err.message;
    } else if (err instanceof z.ZodError) { status = 400; code = 'E_OPTIONS'; message = err.message; }
    else if (typeof err === 'object' && err !== null) {
      const e = err as { statusCode?: number; code?: string; message?: string };
      const sc = e.statusCode ?? 500;
      if (sc === 413 || e.code === 'FST_REQ_FILE_TOO_LARGE' || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') { status = 413; code = 'E_PAYLOAD_TOO_LARGE'; message = `request body over the limit of ${config.bodyLimitBytes} bytes`; }
      else if (sc === 415 || e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') { status = 415; code = 'E_UNSUPPORTED_MEDIA_TYPE'; message = 'send the image as Content-Type image/*, multipart/form-data or application/json (base64)'; }
      else if (sc >= 400 && sc < 500) { status = sc; code = 'E_BAD_REQUEST'; message = e.message ?? 'bad request'; }
    }
    // Unexpected failures are the operator's to see (the client gets only the code).
    if (code === 'E_INTERNAL') process.stderr.write(`kestrel serve: internal error on ${req.method} ${req.url.split('?')[0]}: ${(err as Error)?.stack ?? String(err)}\n`);
    metrics.inc('kestrel_errors_total', 'Error answers by code.', { code });
    void reply.code(status).type('application/json').send(body(code, message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(body('E_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });
  // Bodies are read before the queue sees a job, so the number of work requests in progress is bounded
  // too (queue + running + a few being received): memory stays under that many times the body limit.
  const maxInProgress = config.queue.maxQueued + config.queue.concurrency + 8;
  let inProgress = 0;
  const counted = new WeakSet<FastifyRequest>();
  const release = (req: FastifyRequest): void => { if (counted.delete(req)) inProgress--; };
  app.addHook('onRequest', (req, reply, done) => {
    if (req.method === 'POST' && (req.url.startsWith('/v1/inspect') || req.url.startsWith('/v1/chat/'))) {
      if (inProgress >= maxInProgress) {
        metrics.inc('kestrel_errors_total', 'Error answers by code.', { code: 'E_QUEUE_FULL' });
        void reply.code(429).header('retry-after', '1').send(body('E_QUEUE_FULL', `too many requests in progress (${maxInProgress}); retry later`));
        return;
      }
      inProgress++;
      counted.add(req);
    }
    done();
  });
  app.addHook('onRequestAbort', (req, done) => { release(req); done(); });
  // While draining, ask keep-alive clients to hang up after this answer, so close() is not held open.
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (draining) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    release(req);
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.inc('kestrel_http_requests_total', 'HTTP requests by route and status.', { route, status: String(reply.statusCode) });
    metrics.observe('kestrel_http_request_duration_seconds', 'HTTP request duration.', reply.elapsedTime / 1000, { route });
    done();
  });

  const requireKey = (req: FastifyRequest): ApiKey => {
    const k = authenticate(req.headers.authorization, keys);
    if (!k) throw new HttpError(401, 'E_UNAUTHORIZED', 'missing or unknown API key: send Authorization: Bearer <key>');
    return k;
  };
  const requireStation = (k: ApiKey, station: string): void => {
    if (!mayUseStation(k, station)) throw new HttpError(403, 'E_FORBIDDEN', `this API key is not allowed for station "${station}"`);
  };

  app.get('/healthz', async (_req, reply) => {
    const ok = !draining;
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'draining',
      model: inspector?.model ?? null,
      chat: deps.chat ? deps.chat.name : null,
      queue: deps.jobs
        ? { depth: await deps.jobs.depth(), active: null, maxQueued: config.queue.maxQueued, concurrency: null, shared: true }
        : { depth: queue.depth, active: queue.active, maxQueued: config.queue.maxQueued, concurrency: config.queue.concurrency },
      log: { inspections: await log.count() },
      uptimeS: Math.round((Date.now() - startedAt) / 1000),
    });
  });

  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render()));

  /** Read image + station + partId from whichever of the three body kinds the client sent. */
  async function readInspectInput(req: FastifyRequest): Promise<{ bytes: Buffer; station: string; partId: string | null }> {
    const q = parseQuery(InspectQuerySchema, req.query, 'query');
    let bytes: Buffer | undefined;
    let station = q.station, partId = q.partId;
    if (req.isMultipart()) {
      const fields: Record<string, string> = {};
      for await (const part of req.parts()) {
        if (part.type === 'file') {
          if (bytes) throw new HttpError(400, 'E_BAD_REQUEST', 'send one image per request');
          bytes = await part.toBuffer();
        } else if (typeof part.value === 'string') fields[part.fieldname] = part.value;
      }
      const f = parseOptions(z.object({ station: StationSchema.optional(), partId: PartIdSchema.optional() }).loose(), fields, 'form fields');
      station = f.station ?? station;
      partId = f.partId ?? partId;
    } else if (Buffer.isBuffer(req.body)) {
      // The route's limit is the (larger) JSON one; raw images get the image limit.
      if (req.body.length > config.bodyLimitBytes) throw new HttpError(413, 'E_PAYLOAD_TOO_LARGE', `image over the limit of ${config.bodyLimitBytes} bytes`);
      bytes = req.body;
    } else if (typeof req.body === 'string') {
      throw new HttpError(415, 'E_UNSUPPORTED_MEDIA_TYPE', `Content-Type ${req.headers['content-type'] ?? '(none)'} is not an image: send image/*, multipart/form-data or application/json with base64`);
    } else if (req.body !== undefined && req.body !== null && typeof req.body === 'object') {
      const j = parseOptions(InspectJsonSchema, req.body, 'JSON body');
      bytes = decodeBase64Image(j.image);
      if (bytes.length > config.bodyLimitBytes) throw new HttpError(413, 'E_PAYLOAD_TOO_LARGE', `image over the limit of ${config.bodyLimitBytes} bytes`);
      station = j.station;
      partId = j.partId ?? partId;
    }
    if (!bytes) throw new HttpError(400, 'E_BAD_REQUEST', 'no image: send raw bytes (Content-Type image/*), multipart with a file part, or JSON { image: base64, station }');
    if (!station) throw new KestrelError('E_OPTIONS', 'station is required (?station=... , a form field, or in the JSON body)');
    return { bytes, station, partId: partId ?? null };
  }

  app.post('/v1/inspect', { bodyLimit: jsonLimit }, async (req, reply) => {
    const t0 = performance.now();
    const ts = Date.now();
    const key = requireKey(req);
    if (draining) throw new HttpError(503, 'E_SHUTTING_DOWN', 'the server is shutting down');
    if (!inspector && !deps.jobs) throw new HttpError(503, 'E_MODEL_NOT_FOUND', 'no inspection model is configured; start kestrel serve with --model NAME_OR_DIR');
    const input = await readInspectInput(req);
    requireStation(key, input.station);
    // Idempotency-Key: a client that lost an answer (timeout, server restart) retries with the same
    // key and gets the logged record instead of a second inspection of the same part.
    const rawKey = req.headers['idempotency-key'];
    const requestKey = rawKey === undefined ? null : parseOptions(z.string().regex(/^[\x21-\x7e]{1,128}$/, 'Idempotency-Key: 1-128 printable ASCII characters'), rawKey, 'Idempotency-Key header');
    const answerFrom = (rec: { id: string; verdict: Verdict; score: number; threshold: number; defects: InspectResponse['defects']; model: { name: string; version: string }; station: string; partId: string | null; timings: { totalMs: number } }): InspectResponse => {
      if (rec.station !== input.station || !mayUseStation(key, rec.station)) throw new HttpError(409, 'E_CONFLICT', 'this Idempotency-Key was already used for another request');
      return { id: rec.id, verdict: rec.verdict, score: rec.score, threshold: rec.threshold, defects: rec.defects, model: rec.model, station: rec.station, partId: rec.partId, ms: Math.round(rec.timings.totalMs * 100) / 100 };
    };
    if (requestKey) {
      const prior = await log.getByRequestKey(requestKey);
      if (prior) { void reply.header('idempotent-replayed', 'true'); return reply.send(answerFrom(prior)); }
    }
    const probe = await probeImage(input.bytes, config.maxImagePixels);
    const sha = createHash('sha256').update(input.bytes).digest('hex');
    const remaining = Math.max(1, config.requestTimeoutMs - (performance.now() - t0));
    if (deps.jobs) {
      // Frontend: a worker inspects and commits; the answer is the committed row.
      const id = randomUUID();
      await deps.jobs.add({ id, ts, station: input.station, partId: input.partId, requestKey, imageSha256: sha, image: input.bytes.toString('base64'), format: probe.format, startBy: Date.now() + remaining });
      const stored = await deps.jobs.result(id, { startBy: Date.now() + remaining, runMs: config.queue.runTimeoutMs });
      if (stored.id !== id) { void reply.header('idempotent-replayed', 'true'); return reply.send(answerFrom(stored)); }
      metrics.inc('kestrel_inspections_total', 'Inspections logged, by station and verdict.', { station: input.station, verdict: stored.verdict });
      metrics.observe('kestrel_inspection_seconds', 'Model time per inspection.', stored.timings.inferMs / 1000);
      return reply.send({ ...answerFrom(stored), ms: Math.round((performance.now() - t0) * 100) / 100 });
    }
    if (!inspector) throw new HttpError(503, 'E_MODEL_NOT_FOUND', 'no inspection model is configured');
    const { value, queueMs } = await queue.push(async () => {
      const ti = performance.now();
      const r = await inspector.inspect(input.bytes);
      return { r, inferMs: performance.now() - ti };
    }, remaining);
    const { r, inferMs } = value;
    const id = randomUUID();
    let archivePath: string | null = null;
    if (r.verdict === 'NG' && config.archiveNgDir) {
      const rel = `${new Date(ts).toISOString().slice(0, 10)}/${id}.${extensionFor(probe.format)}`;
      writeFileAtomic(config.archiveNgDir, rel, input.bytes);
      archivePath = rel;
    }
    const totalMs = performance.now() - t0;
    // Committed (fsync'd) before the answer is sent: a client never holds an id the log lacks.
    const stored = await log.insert({
      id, ts, station: input.station, partId: input.partId, source: 'http', imageSha256: sha, imageBytes: input.bytes.length,
      model: inspector.model, score: r.score, threshold: r.threshold, verdict: r.verdict, defects: r.defects,
      timings: { queueMs, inferMs, totalMs }, archivePath, requestKey,
    });
    // Two concurrent requests with one key: the first commit wins and both answer with it.
    if (stored.id !== id) { void reply.header('idempotent-replayed', 'true'); return reply.send(answerFrom(stored)); }
    metrics.inc('kestrel_inspections_total', 'Inspections logged, by station and verdict.', { station: input.station, verdict: r.verdict });
    metrics.observe('kestrel_inspection_seconds', 'Model time per inspection.', inferMs / 1000);
    const res: InspectResponse = {
      id, verdict: r.verdict, score: r.score, threshold: r.threshold, defects: r.defects, model: inspector.model,
      station: input.station, partId: input.partId, ms: Math.round(totalMs * 100) / 100,
    };
    return reply.send(res);
  });

  app.get('/v1/inspections', async (req) => {
    const key = requireKey(req);
    const q = parseQuery(ListQuerySchema, req.query, 'query');
    if (q.station) requireStation(key, q.station);
    return await log.list({ ...q, stations: key.stations });
  });

  app.get('/v1/inspections/:id', async (req) => {
    const key = requireKey(req);
    const { id } = parseOptions(z.object({ id: z.string().uuid() }), req.params, 'path');
    const rec = await log.get(id);
    // Another station's record answers 404, not 403: a scoped key learns nothing about it.
    if (!rec || !mayUseStation(key, rec.station)) throw new HttpError(404, 'E_NOT_FOUND', `no inspection ${id}`);
    return rec;
  });

  app.get('/v1/stats', async (req) => {
    const key = requireKey(req);
    const q = parseQuery(StatsQuerySchema, req.query, 'query');
    if (q.station) requireStation(key, q.station);
    const until = Date.now();
    const since = until - (q.window ?? config.statsWindowS) * 1000;
    const f = await log.window({ station: q.station, stations: key.stations, since, until: until + 1 });
    return { station: q.station ?? null, ...statsReport(f, since, until) };
  });

  registerChatRoute(app, { backend: deps.chat, queue, requireKey, isDraining: () => draining, timeoutMs: config.requestTimeoutMs, bodyLimit: jsonLimit, maxImagePixels: config.maxImagePixels, release });

  let closing: Promise<void> | undefined;
  return {
    app, config, queue, metrics,
    async warmUp(runs = 3) {
      if (!inspector) return [];
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const png = await warmUpImage(i);
        const t0 = performance.now();
        await queue.push(() => inspector.inspect(png));
        times.push(performance.now() - t0);
      }
      return times;
    },
    async listen() {
      return app.listen({ host: config.host, port: config.port });
    },
    close() {
      closing ??= (async () => {
        draining = true;
        const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), config.shutdownTimeoutMs).unref());
        // app.close() stops accepting and waits for in-flight requests (their records are committed
        // before they answer); then the queue is empty too.
        await Promise.race([Promise.all([app.close(), queue.drain()]), timer]);
        await inspector?.close?.();
        await deps.jobs?.close();
        await log.close();
      })();
      return closing;
    },
  };
}

export { type FastifyReply };
