import { z } from 'zod';
import { KestrelError } from '@kestrel/core';

/** `model` values of this form run on a remote OpenAI-compatible server: `openai:http://host:port/v1`. */
export const REMOTE_PREFIX = 'openai:';

/** Environment variable the API key is read from unless `apiKeyEnv` names another. */
export const DEFAULT_API_KEY_ENV = 'KESTREL_OPENAI_API_KEY';

/** True when `model` names a remote server (`openai:URL`). */
export function isRemoteModel(model: unknown): model is string {
  return typeof model === 'string' && model.startsWith(REMOTE_PREFIX);
}

/** The base URL of an `openai:URL` model (no trailing slash), or E_OPTIONS saying what form it takes. */
export function remoteBaseUrl(model: string): string {
  const raw = model.slice(REMOTE_PREFIX.length);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new KestrelError('E_OPTIONS', `model "${model}": after "openai:" give the server's base URL, e.g. openai:http://127.0.0.1:8080/v1`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new KestrelError('E_OPTIONS', `model "${model}": the URL must be http: or https:`);
  if (u.username || u.password) throw new KestrelError('E_OPTIONS', `model "${model}": do not put credentials in the URL; set the API key in $${DEFAULT_API_KEY_ENV} (or the variable named by apiKeyEnv)`);
  return u.href.replace(/\/+$/, '');
}

/** Options that only a remote model takes (they are refused with a local checkpoint). */
export const remoteOptions = {
  /** model id sent to the server (vLLM's --served-model-name, a Kestrel server's folder name); default: the server's only model */
  remoteModel: z.string().min(1).optional(),
  /** name of the environment variable holding the API key (sent as a Bearer token); unset or empty = no key */
  apiKeyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default(DEFAULT_API_KEY_ENV),
  /** limit for one whole request (streamed answers included), milliseconds */
  timeoutMs: z.number().int().positive().default(300_000),
  /** retries after 429 / 503 answers or a refused/reset connection, with exponential backoff */
  maxRetries: z.number().int().min(0).max(10).default(3),
  /** first backoff, milliseconds (doubled per retry, at most 8 s, or the server's Retry-After) */
  retryBaseMs: z.number().int().min(0).default(500),
};

/** The remote settings of a pipeline after parsing. */
export interface RemoteSettings {
  baseUrl: string;
  remoteModel?: string | undefined;
  apiKeyEnv: string;
  timeoutMs: number;
  maxRetries: number;
  retryBaseMs: number;
}

/** What a remote pipeline talks to, in place of a loaded model (its `.remote`). */
export interface RemoteModelInfo {
  /** the server's base URL (`openai:` removed) */
  baseUrl: string;
  /** the model id sent with every request */
  remoteModel: string;
}
