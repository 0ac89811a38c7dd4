import { KestrelError, parseOptions } from '@kestrel/core';
import type { z } from 'zod';
import type { ChatContentPart, ChatMessage, ChatResult } from '../vlm/chat.js';
import type { VlmImage } from '../vlm/processor.js';
import { AskOptionsSchema, CallOptionsSchema, CaptionOptionsSchema, asList, messagesFor, withSystem, type AskPipeline, type AskResult, type CallOptions, type CaptionPipeline, type CaptionResult, type ChatPipeline } from '../vlm/pipelines.js';
import { RemoteChatClient, type WireAnswer, type WireMessage, type WireSettings } from './client.js';
import { streamed } from '../vlm/stream-bridge.js';
import { imageDataUrl } from './images.js';
import { remoteBaseUrl, type RemoteModelInfo } from './options.js';

type Parsed = z.output<typeof AskOptionsSchema>;

/** Pipeline options that choose how a local checkpoint runs. */
const LOCAL_ONLY = ['backend', 'threads', 'dtype', 'device', 'expertsOn', 'cpuExpertLayers'] as const;

async function toWire(messages: readonly ChatMessage[], encode: ImageEncoder): Promise<WireMessage[]> {
  if (!Array.isArray(messages) || messages.length === 0) throw new KestrelError('E_OPTIONS', 'chat needs at least one message');
  return Promise.all(messages.map(async (m, i): Promise<WireMessage> => {
    if (m === null || typeof m !== 'object' || !['system', 'user', 'assistant'].includes(m.role)) throw new KestrelError('E_OPTIONS', `messages[${i}] must be { role: 'system' | 'user' | 'assistant', content }`);
    if (typeof m.content === 'string') return { role: m.role, content: m.content };
    if (!Array.isArray(m.content)) throw new KestrelError('E_OPTIONS', `messages[${i}].content must be a string or an array of parts`);
    const parts: readonly ChatContentPart[] = m.content;
    return {
      role: m.role,
      content: await Promise.all(parts.map(async (p, j) => {
        if (p?.type === 'text' && typeof p.text === 'string') return { type: 'text' as const, text: p.text };
        if (p?.type === 'image' && p.image != null) return { type: 'image_url' as const, image_url: { url: await encode(p.image, `messages[${i}].content[${j}]`) } };
        throw new KestrelError('E_OPTIONS', `messages[${i}].content[${j}] must be {type:'text', text} or {type:'image', image}`);
      })),
    };
  }));
}

function settings(o: Parsed, call: CallOptions | undefined): { g: WireSettings; signal?: AbortSignal | undefined; onText?: ((t: string) => void) | undefined } {
  const { onText, ...rest } = call ?? {};
  const c = parseOptions(CallOptionsSchema, rest, 'call options');
  const seed = c.seed ?? o.seed;
  return {
    g: { maxTokens: c.maxNewTokens ?? o.maxNewTokens, temperature: c.temperature ?? o.temperature, topP: c.topP ?? o.topP, topK: c.topK ?? o.topK, seed, stop: c.stopStrings, skipSpecialTokens: c.skipSpecialTokens },
    signal: c.signal, onText,
  };
}

function result(a: WireAnswer, ms: number): ChatResult {
  return {
    message: { role: 'assistant', content: a.text }, text: a.text, tokenIds: [], finishReason: a.finishReason,
    usage: { promptTokens: a.usage.promptTokens, imageTokens: 0, completionTokens: a.usage.completionTokens, ms },
  };
}

/** An image part -> the data URL sent; by default {@link imageDataUrl}. */
export type ImageEncoder = (image: VlmImage, what: string) => Promise<string>;

/** A `model` getter that explains itself: a remote pipeline has no local VisionLanguageModel. */
export function noLocalModel(info: RemoteModelInfo): PropertyDescriptor {
  return { get() { throw new KestrelError('E_UNSUPPORTED', `this pipeline runs on the remote server ${info.baseUrl} (model ${info.remoteModel}); it has no local VisionLanguageModel (see .remote)`); } };
}

/** E_OPTIONS for options that choose how a local checkpoint runs: where and how the model runs is the server's business. */
export function refuseLocalOptions(options: unknown): void {
  const local = LOCAL_ONLY.filter((k) => (options as Record<string, unknown> | null)?.[k] !== undefined);
  if (local.length) throw new KestrelError('E_OPTIONS', `${local.join(', ')} only apply to a local checkpoint; a remote model runs as its server is set up`);
}

/** Runs one chat request on the server; `encode` turns image parts into data URLs (default {@link imageDataUrl}). */
export type RemoteRunner = (messages: readonly ChatMessage[], call?: CallOptions, encode?: ImageEncoder) => Promise<ChatResult>;

/** Connect (list the models once), pick the model id, and return a runner of chat requests. */
export async function connect(o: Parsed): Promise<{ info: RemoteModelInfo; run: RemoteRunner }> {
  const client = new RemoteChatClient({ baseUrl: remoteBaseUrl(o.model as string), remoteModel: o.remoteModel, apiKeyEnv: o.apiKeyEnv, timeoutMs: o.timeoutMs, maxRetries: o.maxRetries, retryBaseMs: o.retryBaseMs });
  let remoteModel = o.remoteModel;
  if (remoteModel === undefined) {
    const ids = await client.listModels();
    if (ids.length !== 1) throw new KestrelError('E_OPTIONS', `${client.settings.baseUrl} serves ${ids.length ? `${ids.length} models (${ids.join(', ')})` : 'no model'}; choose one with remoteModel`);
    remoteModel = ids[0]!;
  }
  const info: RemoteModelInfo = { baseUrl: client.settings.baseUrl, remoteModel };
  const run: RemoteRunner = async (messages, call, encode = imageDataUrl) => {
    const t0 = performance.now();
    const s = settings(o, call);
    const a = await client.complete(remoteModel, await toWire(messages, encode), s.g, { signal: s.signal, onText: s.onText });
    return result(a, performance.now() - t0);
  };
  return { info, run };
}

/**
 * `ask`, `caption` or `chat` on a remote OpenAI-compatible server (`model: 'openai:URL'`): the same call
 * shapes as the local pipelines; `.remote` says where they run. Usage counts are the server's
 * (`imageTokens` is 0: the API does not report it) and `tokenIds` is empty.
 */
export async function createPipeline(task: string, options: unknown): Promise<AskPipeline | CaptionPipeline | ChatPipeline> {
  refuseLocalOptions(options);
  if (task === 'caption') {
    const o = parseOptions(CaptionOptionsSchema, options, 'caption options');
    const { info, run } = await connect(o);
    const one = async (image: VlmImage, call?: CallOptions): Promise<CaptionResult> => ({ caption: (await run(messagesFor(o.systemPrompt, [image], o.prompt), call)).text.trim() });
    async function caption(images: VlmImage | readonly VlmImage[], call?: CallOptions): Promise<CaptionResult | CaptionResult[]> {
      if (!Array.isArray(images)) return one(images as VlmImage, call);
      const out: CaptionResult[] = [];
      for (const im of images as readonly VlmImage[]) out.push(await one(im, call));
      return out;
    }
    return Object.defineProperties(Object.assign(caption, { remote: info, dispose: () => undefined }), { model: noLocalModel(info) }) as unknown as CaptionPipeline;
  }
  const o = parseOptions(AskOptionsSchema, options, `${task} options`);
  const { info, run } = await connect(o);
  const chatWith = (messages: readonly ChatMessage[], call?: CallOptions): Promise<ChatResult> => run(withSystem(o.systemPrompt, messages), call);
  if (task === 'chat') {
    const stream = (messages: readonly ChatMessage[], call?: CallOptions) => streamed((onText) => chatWith(messages, { ...call, onText: (t) => { onText(t); call?.onText?.(t); } }));
    return Object.defineProperties(Object.assign(chatWith, { stream, remote: info, dispose: () => undefined }), { model: noLocalModel(info) }) as unknown as ChatPipeline;
  }
  const ask = async (images: VlmImage | readonly VlmImage[], question: string, call?: CallOptions): Promise<AskResult> => {
    const r = await run(messagesFor(o.systemPrompt, asList(images), question), call);
    return { text: r.text, usage: r.usage };
  };
  const stream = (images: VlmImage | readonly VlmImage[], question: string, call?: CallOptions) => streamed((onText) => ask(images, question, { ...call, onText: (t) => { onText(t); call?.onText?.(t); } }));
  return Object.defineProperties(Object.assign(ask, { stream, chat: chatWith, remote: info, dispose: () => undefined }), { model: noLocalModel(info) }) as unknown as AskPipeline;
}
