import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import { VisionLanguageModel } from './vision-language-model.js';
import type { VlmImage } from './processor.js';
import { chat, type ChatMessage, type ChatResult, type ChatTimings, type ChatUsage } from './chat.js';

const modelOptions = {
  /** checkpoint directory, or an already loaded VisionLanguageModel (shared between pipelines) */
  model: z.union([z.string().min(1), z.custom<VisionLanguageModel>((v) => v instanceof VisionLanguageModel, 'expected a checkpoint directory or a VisionLanguageModel')]),
  backend: z.enum(['auto', 'portable', 'native']).default('auto'),
  threads: z.number().int().positive().optional(),
  dtype: z.enum(['f32', 'bf16', 'int8']).optional(),
  /** where the language model runs; 'cuda' needs `npm run build:cuda` and an NVIDIA GPU */
  device: z.enum(['cpu', 'cuda']).default('cpu'),
  /** device 'cuda': where the routed experts live (see MoeLanguageModel.load) */
  expertsOn: z.enum(['gpu', 'cpu', 'auto']).optional(),
  /** device 'cuda': routed experts of the first N MoE layers on the CPU */
  cpuExpertLayers: z.number().int().nonnegative().optional(),
  maxNewTokens: z.number().int().positive().default(256),
  temperature: z.number().min(0).default(0),
  topP: z.number().gt(0).max(1).default(1),
  topK: z.number().int().min(0).default(0),
  seed: z.number().int().optional(),
  /** system prompt placed before the conversation ('' = none, as DeepSeek-VL2's default) */
  systemPrompt: z.string().default(''),
};

/** Options of `pipeline('ask', ...)`. */
export const AskOptionsSchema = z.object(modelOptions).strict();
export type AskOptions = z.input<typeof AskOptionsSchema>;

/** Options of `pipeline('caption', ...)`. */
export const CaptionOptionsSchema = z.object({
  ...modelOptions,
  maxNewTokens: z.number().int().positive().default(64),
  /** the question that asks for a caption */
  prompt: z.string().min(1).default('Describe this image in one sentence.'),
}).strict();
export type CaptionOptions = z.input<typeof CaptionOptionsSchema>;

/** Per-call overrides of an ask / caption pipeline. */
export const CallOptionsSchema = z.object({
  maxNewTokens: z.number().int().positive().optional(),
  temperature: z.number().min(0).optional(),
  topP: z.number().gt(0).max(1).optional(),
  topK: z.number().int().min(0).optional(),
  seed: z.number().int().optional(),
  /** strings that end the answer (cut before them) */
  stopStrings: z.array(z.string().min(1)).optional(),
  /** cancels the call (it rejects with E_ABORTED) */
  signal: z.instanceof(AbortSignal).optional(),
}).strict();
export type CallOptions = z.input<typeof CallOptionsSchema> & { onText?: (text: string) => void };

/** Answer of the ask pipeline. */
export interface AskResult {
  text: string;
  usage: ChatUsage;
  /** where the time went (vision per tile, prefill, first token, decode, ...) */
  timings: ChatTimings;
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
  /** the loaded model (use it for `generate`, `forward`, ...) */
  readonly model: VisionLanguageModel;
  /** release the model (only when the pipeline loaded it) */
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
  readonly model: VisionLanguageModel;
  dispose(): void;
}

declare module '../registry.js' {
  interface PipelineTasks {
    ask: { options: AskOptions; fn: AskPipeline };
    caption: { options: CaptionOptions; fn: CaptionPipeline };
  }
}

function asList(images: VlmImage | readonly VlmImage[]): VlmImage[] {
  return Array.isArray(images) ? [...(images as readonly VlmImage[])] : [images as VlmImage];
}

function messagesFor(system: string, images: readonly VlmImage[], text: string): ChatMessage[] {
  if (typeof text !== 'string' || text.trim() === '') throw new KestrelError('E_OPTIONS', 'the question must be a non-empty string');
  const msgs: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  msgs.push({ role: 'user', content: [...images.map((image) => ({ type: 'image' as const, image })), { type: 'text' as const, text }] });
  return msgs;
}

async function loadModel(o: z.output<typeof AskOptionsSchema>): Promise<{ model: VisionLanguageModel; owned: boolean }> {
  if (o.model instanceof VisionLanguageModel) {
    if (!o.model.tokenizer) throw new KestrelError('E_MODEL_NOT_FOUND', `${o.model.dir} has no tokenizer.json; the ask and caption pipelines need one`);
    return { model: o.model, owned: false };
  }
  const model = await VisionLanguageModel.load(o.model, {
    backend: o.backend, ...(o.dtype !== undefined ? { dtype: o.dtype } : {}), device: o.device, ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.expertsOn !== undefined ? { expertsOn: o.expertsOn } : {}), ...(o.cpuExpertLayers !== undefined ? { cpuExpertLayers: o.cpuExpertLayers } : {}),
  });
  if (!model.tokenizer) {
    model.dispose();
    throw new KestrelError('E_MODEL_NOT_FOUND', `${o.model} has no tokenizer.json; the ask and caption pipelines need one`);
  }
  return { model, owned: true };
}

function genOptions(o: z.output<typeof AskOptionsSchema>, call: CallOptions | undefined): Record<string, unknown> {
  const { onText, ...rest } = call ?? {};
  const c = parseOptions(CallOptionsSchema, rest, 'call options');
  const seed = c.seed ?? o.seed;
  return {
    maxNewTokens: c.maxNewTokens ?? o.maxNewTokens, temperature: c.temperature ?? o.temperature, topP: c.topP ?? o.topP, topK: c.topK ?? o.topK,
    ...(seed !== undefined ? { seed } : {}), ...(onText ? { onText } : {}),
    ...(c.stopStrings ? { stopStrings: c.stopStrings } : {}), ...(c.signal ? { signal: c.signal } : {}),
  };
}

async function createAsk(options: unknown): Promise<AskPipeline> {
  const o = parseOptions(AskOptionsSchema, options, 'ask options');
  const { model, owned } = await loadModel(o);
  const run = async (images: VlmImage | readonly VlmImage[], question: string, call?: CallOptions): Promise<AskResult> => {
    const r = await chat(model, messagesFor(o.systemPrompt, asList(images), question), genOptions(o, call));
    return { text: r.text, usage: r.usage, timings: r.timings };
  };
  async function* stream(images: VlmImage | readonly VlmImage[], question: string, call?: CallOptions): AsyncGenerator<string, AskResult, undefined> {
    // Bridge the onText callback to a generator: pieces queue up while the model runs.
    const queue: string[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    const p = run(images, question, { ...call, onText: (t) => { queue.push(t); call?.onText?.(t); wake?.(); } }).finally(() => { done = true; wake?.(); });
    p.catch(() => undefined);
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (done) break;
      await new Promise<void>((res) => { wake = res; });
      wake = null;
    }
    return await p;
  }
  const chatWith = (messages: readonly ChatMessage[], call?: CallOptions): Promise<ChatResult> => {
    const msgs = o.systemPrompt && !messages.some((m) => m?.role === 'system') ? [{ role: 'system' as const, content: o.systemPrompt }, ...messages] : messages;
    return chat(model, msgs, genOptions(o, call));
  };
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

/** Task module entry (see registry.ts): 'ask' and 'caption'. */
export async function createPipeline(task: string, options: unknown): Promise<AskPipeline | CaptionPipeline> {
  if (task === 'ask') return createAsk(options);
  if (task === 'caption') return createCaption(options);
  throw new KestrelError('E_OPTIONS', `the VLM task module has no task "${task}"`);
}
