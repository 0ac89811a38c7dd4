import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import { DetectRulesSchema } from './detect-inspector.js';

const ApiKeySchema = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256 (kestrel serve --hash-key KEY prints it)'),
  stations: z.array(z.string().min(1)).min(1).optional(),
  name: z.string().optional(),
});

/** Station and part ids: short, printable, no path characters (they appear in logs and metrics). */
export const StationSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'station: 1-64 characters of A-Z a-z 0-9 _ . : -');
export const PartIdSchema = z.string().regex(/^[\x21-\x7e]{1,128}$/, 'partId: 1-128 printable ASCII characters without spaces');

/**
 * Configuration of `kestrel serve` (a JSON file given with `--config`, then flags on top). Every field has
 * a default that suits one line on one machine.
 */
export const ServeConfigSchema = z.object({
  /** Address to listen on. Loopback by default: put a reverse proxy with TLS in front for a network. */
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8080),
  /** The inspection log: a SQLite file, or a `postgres://user@host:port/db` URL for several machines. */
  db: z.string().min(1).default('kestrel-inspections.db'),
  /**
   * With a shared queue (`queue.url`): `frontend` takes HTTP requests and enqueues, `worker` runs the
   * model and commits rows, `all` (the default) does both in one process.
   */
  role: z.enum(['frontend', 'worker', 'all']).default('all'),
  /** Model for /v1/inspect: a shipped name (models/<name>) or a model directory. */
  model: z.string().min(1).optional(),
  /** `defects` (OK/NG from a defects model) or `detect` (a detector plus `rules`). */
  pipeline: z.enum(['defects', 'detect']).default('defects'),
  /** NG rules for the detect pipeline. */
  rules: DetectRulesSchema.optional(),
  /** Vision-language model directory for /v1/chat/completions (off when absent). */
  vlm: z.string().min(1).optional(),
  /** API keys, stored as sha256 hashes. */
  apiKeys: z.array(ApiKeySchema).default([]),
  /** Largest image upload in bytes (413 above). JSON bodies may be 4/3 of this (base64). */
  bodyLimitBytes: z.number().int().positive().default(20 * 1024 * 1024),
  /** Largest image in pixels (checked from the header before decoding). */
  maxImagePixels: z.number().int().positive().default(40_000_000),
  /** A request must be received, and its job started, within this time (503 otherwise). */
  requestTimeoutMs: z.number().int().positive().default(30_000),
  /**
   * Model worker threads, each with its own copy of the inspection model (workers × native threads ≤ cores).
   * A worker that dies fails only the request it held (503 E_WORKER_CRASHED) and is restarted.
   */
  workers: z.number().int().positive().default(1),
  queue: z.object({
    /** Inspections run at once (the model uses the CPU; 1 suits a small machine). */
    concurrency: z.number().int().positive().default(1),
    /** Inspections waiting at most; more are refused with 429. */
    maxQueued: z.number().int().min(0).default(64),
    /**
     * `redis://host:port`: share one BullMQ queue with worker processes (`role`). Absent: the
     * in-process queue.
     */
    url: z.string().regex(/^rediss?:\/\//, 'queue.url: a redis:// URL').optional(),
    /** With a shared queue: how long a frontend waits for a started job to finish (a killed worker's job is run again within it). */
    runTimeoutMs: z.number().int().positive().default(60_000),
  }).prefault({}),
  /** Copy NG images here (`<dir>/<date>/<id>.<ext>`, written atomically). */
  archiveNgDir: z.string().min(1).optional(),
  /** Default window of /v1/stats, seconds. */
  statsWindowS: z.number().int().positive().default(3600),
  /** How long a shutdown waits for in-flight work before giving up. */
  shutdownTimeoutMs: z.number().int().positive().default(30_000),
}).strict();
export type ServeConfig = z.output<typeof ServeConfigSchema>;
export type ServeConfigInput = z.input<typeof ServeConfigSchema>;

/** Read and validate a JSON config file. */
export function loadServeConfigFile(path: string): ServeConfigInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KestrelError('E_IO', `cannot read config file ${path}: ${(e as Error).message}`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new KestrelError('E_OPTIONS', `config file ${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  // Validate now so a bad file fails with its own name in the message.
  parseOptions(ServeConfigSchema, json, `config file ${path}`);
  return json as ServeConfigInput;
}
