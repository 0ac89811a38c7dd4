import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import { generateOptionsSchema as gen } from '@kestrel/moe';
import { VisionLanguageModel, VlmLoadOptionsSchema } from './vision-language-model.js';
import type { VlmImage } from './processor.js';
import { chat, type ChatMessage, type ChatResult, type ChatTimings, type ChatUsage } from './chat.js';
import { remoteOptions, type RemoteModelInfo } from '../remote/options.js';
import { streamed } from './stream-bridge.js';

/** Options every VLM pipeline shares (model, backend, generation defaults). */
export const modelOptions = {
  /**
   * checkpoint directory, an already loaded VisionLanguageModel (shared between pipelines), or
   * `openai:http://host:port/v1` for a remote OpenAI-compatible server (vLLM, SGLang, `kestrel serve --vlm`)
   */
  model: z.union([z.string().min(1), z.custom<VisionLanguageModel>((v) => v instanceof VisionLanguageModel, 'expected a checkpoint directory or a VisionLanguageModel')]),
  /** how the model loads (VisionLanguageModel.load's options; 'cuda' needs `npm run build:cuda` and an NVIDIA GPU) */
  ...VlmLoadOptionsSchema.shape,
  /** generation defaults (as MoeLanguageModel.generate), with a longer answer by default */
  ...gen.pick({ temperature: true, topP: true, topK: true, seed: true }).shape,
  maxNewTokens: z.number().int().positive().default(256),
  /** system prompt placed before the conversation ('' = none, as DeepSeek-VL2's default) */
  systemPrompt: z.string().default(''),
  ...remoteOptions,
};

/** Options of `pipeline('ask', ...)`. */
export const AskOptionsSchema = z.object(modelOptions).strict();
export type AskOptions = z.input<typeof AskOptionsSchema>;

/** Options of `pipeline('chat', ...)`: the same as ask's. */
export const ChatPipelineOptionsSchema = AskOptionsSchema;
export type ChatPipelineOptions = AskOptions;

/** Options of `pipeline('caption', ...)`. */
export const CaptionOptionsSchema = z.object({
  ...modelOptions,
  maxNewTokens: z.number().int().positive().default(64),
  /** the question that asks for a caption */
  prompt: z.string().min(1).default('Describe this image in one sentence.'),
}).strict();
export type CaptionOptions = z.input<typeof CaptionOptionsSchema>;

/** Per-call overrides of an ask / caption pipeline. */
// Without defaults: an option the call leaves out falls back to the pipeline's value.
export const CallOptionsSchema = z.object({
  maxNewTokens: z.number().int().positive().optional(),
  temperature: gen.shape.temperature.unwrap().optional(),
  topP: gen.shape.topP.unwrap().optional(),
  topK: gen.shape.topK.unwrap().optional(),
  seed: gen.shape.seed,
  /** strings that end the answer (cut before them) */
  stopStrings: gen.shape.stopStrings.unwrap().optional(),
  /** false keeps special tokens (e.g. grounding tags) in the answer text */
  skipSpecialTokens: gen.shape.skipSpecialTokens.unwrap().optional(),
  /** cancels the call (it rejects with E_ABORTED) */
  signal: gen.shape.signal,
}).strict();
export type CallOptions = z.input<typeof CallOptionsSchema> & {
  /** each new piece of the answer as it is generated */
  onText?: (text: string) => void;
  /**
   * once the prompt is ready, before the answer: in process right before the first token is generated; with the
   * model in a worker at the first streamed piece (errors of decoding and prompt building still come before it)
   */
  onStart?: () => void;
};

/** Answer of the ask pipeline. */
export interface AskResult {
  text: string;
  usage: ChatUsage;
  /** where the time went (vision per tile, prefill, first token, decode, ...) */
  timings?: ChatTimings;
}

/** `pipeline('ask')`: a question about one or more images (all in one prompt). */
export interface AskPipeline {
  (images: VlmImage | readonly VlmImage[], question: string, options?: CallOptions): Promise<AskResult>;
  /** the same, yielding the answer piece by piece; the generator's return value is the full result */
  stream(images: VlmImage | readonly VlmImage[], question: string, options?: CallOptions): AsyncGenerator<string, AskResult, undefined>;
  /**
   * OpenAI-style messages with the pipeline's generation defaults:
   * `ask.chat([{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text }] }])`.
   */
  chat(messages: readonly ChatMessage[], options?: CallOptions): Promise<ChatResult>;
  /** the loaded model (use it for `generate`, `forward`, ...); a remote pipeline throws E_UNSUPPORTED here */
  readonly model: VisionLanguageModel;
  /** where a remote pipeline runs (`model: 'openai:URL'`); undefined for a local model */
  readonly remote?: RemoteModelInfo;
  /** release the model (only when the pipeline loaded it) */
  dispose(): void;
}

/** `pipeline('chat')`: OpenAI-style messages in, the answer out, with the pipeline's generation defaults. */
export interface ChatPipeline {
  (messages: readonly ChatMessage[], options?: CallOptions): Promise<ChatResult>;
  /** the same, yielding the answer piece by piece; the generator's return value is the full result */
  stream(messages: readonly ChatMessage[], options?: CallOptions): AsyncGenerator<string, ChatResult, undefined>;
  /** the loaded model; a remote pipeline throws E_UNSUPPORTED here */
  readonly model: VisionLanguageModel;
  /** where a remote pipeline runs; undefined for a local model */
  readonly remote?: RemoteModelInfo;
  dispose(): void;
}

/** Caption of one image. */
export interface CaptionResult {
  caption: string;
}

/** `pipeline('caption')`: one caption per image (each image in its own prompt). */
export interface CaptionPipeline {
  (image: VlmImage, options?: CallOptions): Promise<CaptionResult>;
  (images: readonly VlmImage[], options?: CallOptions): Promise<CaptionResult[]>;
  /** the loaded model; a remote pipeline throws E_UNSUPPORTED here */
  readonly model: VisionLanguageModel;
  /** where a remote pipeline runs; undefined for a local model */
  readonly remote?: RemoteModelInfo;
  dispose(): void;
}

declare module '../registry.js' {
  interface PipelineTasks {
    ask: { options: AskOptions; fn: AskPipeline };
    caption: { options: CaptionOptions; fn: CaptionPipeline };
    chat: { options: ChatPipelineOptions; fn: ChatPipeline };
  }
}

/** One image or a list of them, as a list. */
export function asList(images: VlmImage | readonly VlmImage[]): VlmImage[] {
  return Array.isArray(images) ? [...(images as readonly VlmImage[])] : [images as VlmImage];
}

/** The messages of one question about images, after an optional system prompt. */
export function messagesFor(system: string, images: readonly VlmImage[], text: string): ChatMessage[] {
  if (typeof text !== 'string' || text.trim() === '') throw new KestrelError('E_OPTIONS', 'the question must be a non-empty string');
  const msgs: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  msgs.push({ role: 'user', content: [...images.map((image) => ({ type: 'image' as const, image })), { type: 'text' as const, text }] });
  return msgs;
}

/** The pipeline's system prompt first, unless the messages bring their own. */
export function withSystem(system: string, messages: readonly ChatMessage[]): readonly ChatMessage[] {
  return system && !messages.some((m) => m?.role === 'system') ? [{ role: 'system' as const, content: system }, ...messages] : messages;
}

/** The pipeline's model: the given VisionLanguageModel, or one loaded from the directory (then owned). */
export async function loadModel(o: z.output<typeof AskOptionsSchema>): Promise<{ model: VisionLanguageModel; owned: boolean }> {
  if (o.remoteModel !== undefined) throw new KestrelError('E_OPTIONS', 'remoteModel only applies to a remote model (model: "openai:http://host:port/v1")');
  if (o.model instanceof VisionLanguageModel) {
    if (!o.model.tokenizer) throw new KestrelError('E_MODEL_NOT_FOUND', `${o.model.dir} has no tokenizer.json; the VLM pipelines (ask, caption, ground) need one`);
    return { model: o.model, owned: false };
  }
  const load = Object.fromEntries(Object.keys(VlmLoadOptionsSchema.shape).flatMap((k) => (o[k as keyof typeof o] !== undefined ? [[k, o[k as keyof typeof o]]] : [])));
  const model = await VisionLanguageModel.load(o.model, load);
  if (!model.tokenizer) {
    model.dispose();
    throw new KestrelError('E_MODEL_NOT_FOUND', `${o.model} has no tokenizer.json; the VLM pipelines (ask, caption, ground) need one`);
  }
  return { model, owned: true };
}

/** Generation options of one call: the call's overrides over the pipeline's defaults. */
export function genOptions(o: z.output<typeof AskOptionsSchema>, call: CallOptions | undefined): Record<string, unknown> {
  const { onText, onStart, ...rest } = call ?? {};
  const c = parseOptions(CallOptionsSchema, rest, 'call options');
  const seed = c.seed ?? o.seed;
  return {
    maxNewTokens: c.maxNewTokens ?? o.maxNewTokens, temperature: c.temperature ?? o.temperature, topP: c.topP ?? o.topP, topK: c.topK ?? o.topK,
    ...(seed !== undefined ? { seed } : {}), ...(onText ? { onText } : {}), ...(onStart ? { onStart } : {}),
    ...(c.stopStrings ? { stopStrings: c.stopStrings } : {}), ...(c.signal ? { signal: c.signal } : {}),
    ...(c.skipSpecialTokens !== undefined ? { skipSpecialTokens: c.skipSpecialTokens } : {}),
  };
}

async function createAsk(options: unknown): Promise<AskPipeline> {
  const o = parseOptions(AskOptionsSchema, options, 'ask options');
  const { model, owned } = await loadModel(o);
  const run = async (images: VlmImage | readonly VlmImage[], question: string, call?: CallOptions): Promise<AskResult> => {
    const r = await chat(model, messagesFor(o.systemPrompt, asList(images), question), genOptions(o, call));
    return { text: r.text, usage: r.usage, ...(r.timings ? { timings: r.timings } : {}) };
  };
  const stream = (images: VlmImage | readonly VlmImage[], question: string, call?: CallOptions): AsyncGenerator<string, AskResult, undefined> =>
    streamed((onText) => run(images, question, { ...call, onText: (t) => { onText(t); call?.onText?.(t); } }));
  const chatWith = (messages: readonly ChatMessage[], call?: CallOptions): Promise<ChatResult> => chat(model, withSystem(o.systemPrompt, messages), genOptions(o, call));
  return Object.assign(run, { stream, chat: chatWith, model, dispose: () => { if (owned) model.dispose(); } }) as AskPipeline;
}

async function createCaption(options: unknown): Promise<CaptionPipeline> {
  const o = parseOptions(CaptionOptionsSchema, options, 'caption options');
  const { model, owned } = await loadModel(o);
  const one = async (image: VlmImage, call?: CallOptions): Promise<CaptionResult> => {
    const r = await chat(model, messagesFor(o.systemPrompt, [image], o.prompt), genOptions(o, call));
    return { caption: r.text.trim() };
  };
  async function run(images: VlmImage | readonly VlmImage[], call?: CallOptions): Promise<CaptionResult | CaptionResult[]> {
    if (!Array.isArray(images)) return one(images as VlmImage, call);
    const out: CaptionResult[] = [];
    for (const im of images as readonly VlmImage[]) out.push(await one(im, call));
    return out;
  }
  return Object.assign(run, { model, dispose: () => { if (owned) model.dispose(); } }) as CaptionPipeline;
}

async function createChat(options: unknown): Promise<ChatPipeline> {
  const o = parseOptions(ChatPipelineOptionsSchema, options, 'chat options');
  const { model, owned } = await loadModel(o);
  const run = (messages: readonly ChatMessage[], call?: CallOptions): Promise<ChatResult> => chat(model, withSystem(o.systemPrompt, messages), genOptions(o, call));
  const stream = (messages: readonly ChatMessage[], call?: CallOptions): AsyncGenerator<string, ChatResult, undefined> =>
    streamed((onText) => run(messages, { ...call, onText: (t) => { onText(t); call?.onText?.(t); } }));
  return Object.assign(run, { stream, model, dispose: () => { if (owned) model.dispose(); } }) as ChatPipeline;
}

/** Task module entry (see registry.ts): 'ask', 'caption' and 'chat'. */
export async function createPipeline(task: string, options: unknown): Promise<AskPipeline | CaptionPipeline | ChatPipeline> {
  if (task === 'ask') return createAsk(options);
  if (task === 'caption') return createCaption(options);
  if (task === 'chat') return createChat(options);
  throw new KestrelError('E_OPTIONS', `the VLM task module has no task "${task}"`);
}
