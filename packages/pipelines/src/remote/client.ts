import { KestrelError } from '@kestrel/core';
import { remoteError } from './errors.js';
import type { RemoteSettings } from './options.js';
import { sseData } from './sse.js';

/** One message in the OpenAI chat format. */
export interface WireMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ({ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } })[];
}

/** The generation settings of one request. */
export interface WireSettings {
  maxTokens: number;
  temperature: number;
  topP: number;
  /** sent as `top_k` (an extension vLLM, SGLang and Kestrel's server take) when > 0 */
  topK: number;
  seed?: number | undefined;
  stop?: string[] | undefined;
  /** sent as `skip_special_tokens: false` (vLLM's extension, Kestrel's server takes it too) when false */
  skipSpecialTokens?: boolean | undefined;
}

/** A finished answer. */
export interface WireAnswer {
  text: string;
  finishReason: 'stop' | 'length';
  usage: { promptTokens: number; completionTokens: number };
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> => new Promise((resolve, reject) => {
  if (signal.aborted) { reject(signal.reason); return; }
  const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
  const onAbort = (): void => { clearTimeout(t); reject(signal.reason); };
  signal.addEventListener('abort', onAbort, { once: true });
});

/** Retry-After in milliseconds (seconds or an HTTP date), if the answer has one. */
function retryAfterMs(r: Response): number | undefined {
  const v = r.headers.get('retry-after');
  if (!v) return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const d = Date.parse(v);
  return Number.isFinite(d) ? Math.max(0, d - Date.now()) : undefined;
}

/**
 * A small client for the OpenAI chat API over Node's fetch: JSON or SSE streaming, retries with
 * exponential backoff on 429/503 and refused/reset connections (before any answer byte), one deadline
 * for the whole call, the caller's AbortSignal, and the API key from an environment variable.
 */
export class RemoteChatClient {
  constructor(readonly settings: RemoteSettings) {}

  private headers(): Record<string, string> {
    const key = process.env[this.settings.apiKeyEnv];
    return { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(key ? { authorization: `Bearer ${key}` } : {}) };
  }

  /** Run `fn` with a signal that fires on the caller's abort or at the deadline; map both to KestrelErrors. */
  private async withDeadline<T>(signal: AbortSignal | undefined, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = AbortSignal.timeout(this.settings.timeoutMs);
    const s = signal ? AbortSignal.any([signal, deadline]) : deadline;
    try {
      return await fn(s);
    } catch (e) {
      if (signal?.aborted) throw new KestrelError('E_ABORTED', 'the remote call was aborted', { cause: e });
      if (deadline.aborted) throw new KestrelError('E_BACKEND_UNAVAILABLE', `remote model server ${this.settings.baseUrl} gave no complete answer within ${this.settings.timeoutMs} ms (timeoutMs)`, { cause: e });
      throw e;
    }
  }

  /** One HTTP exchange that answered 2xx, after the retries the settings allow. */
  private async send(path: string, init: { method: 'GET' | 'POST'; body?: string }, signal: AbortSignal): Promise<Response> {
    const url = `${this.settings.baseUrl}${path}`;
    for (let attempt = 0; ; attempt++) {
      let r: Response | undefined;
      let netError: unknown;
      try {
        r = await fetch(url, { method: init.method, headers: this.headers(), ...(init.body !== undefined ? { body: init.body } : {}), signal });
      } catch (e) {
        if (signal.aborted) throw e;
        netError = e;
      }
      if (r?.ok) return r;
      const retryable = r ? r.status === 429 || r.status === 503 : true;
      if (!retryable || attempt >= this.settings.maxRetries) {
        if (!r) {
          const cause = (netError as { cause?: { code?: string } })?.cause?.code ?? (netError as Error)?.message;
          throw new KestrelError('E_BACKEND_UNAVAILABLE', `cannot reach remote model server ${url} (${cause}${attempt ? `, ${attempt + 1} tries` : ''}). Check that it runs and the URL is right.`, { cause: netError });
        }
        const body: unknown = await r.json().catch(() => null);
        throw remoteError(r.status, body, url, this.settings.apiKeyEnv);
      }
      const backoff = Math.min(8000, this.settings.retryBaseMs * 2 ** attempt);
      const wait = r ? retryAfterMs(r) ?? backoff : backoff;
      await r?.body?.cancel().catch(() => undefined);
      await sleep(Math.min(wait, 30_000), signal);
    }
  }

  /** Model ids the server lists (GET /models). */
  async listModels(signal?: AbortSignal): Promise<string[]> {
    return this.withDeadline(signal, async (s) => {
      const r = await this.send('/models', { method: 'GET' }, s);
      const body = (await r.json().catch(() => null)) as { data?: { id?: unknown }[] } | null;
      if (!Array.isArray(body?.data)) throw new KestrelError('E_BACKEND_UNAVAILABLE', `remote model server ${this.settings.baseUrl}/models did not answer an OpenAI model list`);
      return body.data.map((m) => m.id).filter((id): id is string => typeof id === 'string');
    });
  }

  /** One chat completion; streamed (pieces to `onText`) when `onText` is given. */
  async complete(model: string, messages: WireMessage[], g: WireSettings, o: { signal?: AbortSignal | undefined; onText?: ((t: string) => void) | undefined } = {}): Promise<WireAnswer> {
    const stream = o.onText !== undefined;
    const body = JSON.stringify({
      model, messages, max_tokens: g.maxTokens, temperature: g.temperature, top_p: g.topP,
      ...(g.topK > 0 ? { top_k: g.topK } : {}), ...(g.seed !== undefined ? { seed: g.seed } : {}), ...(g.stop?.length ? { stop: g.stop } : {}),
      ...(g.skipSpecialTokens === false ? { skip_special_tokens: false } : {}),
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    });
    return this.withDeadline(o.signal, async (s) => {
      const r = await this.send('/chat/completions', { method: 'POST', body }, s);
      return stream ? this.readStream(r, o.onText!) : this.readJson(r);
    });
  }

  private async readJson(r: Response): Promise<WireAnswer> {
    const b = (await r.json().catch(() => null)) as { choices?: { message?: { content?: unknown }; finish_reason?: unknown }[]; usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } } | null;
    const c = b?.choices?.[0];
    if (!c || typeof c.message?.content !== 'string') throw new KestrelError('E_BACKEND_UNAVAILABLE', `remote model server ${this.settings.baseUrl} answered without choices[0].message.content`);
    return { text: c.message.content, finishReason: c.finish_reason === 'length' ? 'length' : 'stop', usage: usageOf(b?.usage) };
  }

  private async readStream(r: Response, onText: (t: string) => void): Promise<WireAnswer> {
    if (!r.body) throw new KestrelError('E_BACKEND_UNAVAILABLE', `remote model server ${this.settings.baseUrl} sent an empty stream`);
    let text = '';
    let finish: 'stop' | 'length' | undefined;
    let usage = { promptTokens: 0, completionTokens: 0 };
    let done = false;
    for await (const data of sseData(r.body)) {
      if (data === '[DONE]') { done = true; break; }
      let ev: { choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[]; usage?: unknown; error?: unknown };
      try {
        ev = JSON.parse(data) as typeof ev;
      } catch {
        throw new KestrelError('E_BACKEND_UNAVAILABLE', `remote model server ${this.settings.baseUrl} sent a stream event that is not JSON: ${data.slice(0, 80)}`);
      }
      if (ev.error !== undefined) throw remoteError(500, ev, `${this.settings.baseUrl} (in the stream)`, this.settings.apiKeyEnv);
      const c = ev.choices?.[0];
      if (typeof c?.delta?.content === 'string' && c.delta.content) { text += c.delta.content; onText(c.delta.content); }
      if (typeof c?.finish_reason === 'string') finish = c.finish_reason === 'length' ? 'length' : 'stop';
      if (ev.usage) usage = usageOf(ev.usage);
    }
    if (!done && finish === undefined) throw new KestrelError('E_BACKEND_UNAVAILABLE', `the stream from ${this.settings.baseUrl} ended before the answer was complete`);
    return { text, finishReason: finish ?? 'stop', usage };
  }
}

function usageOf(u: unknown): { promptTokens: number; completionTokens: number } {
  const x = (u ?? {}) as { prompt_tokens?: unknown; completion_tokens?: unknown };
  return { promptTokens: typeof x.prompt_tokens === 'number' ? x.prompt_tokens : 0, completionTokens: typeof x.completion_tokens === 'number' ? x.completion_tokens : 0 };
}

