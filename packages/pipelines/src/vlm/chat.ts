import { z } from 'zod';
import { KestrelError, parseOptions, type Tensor } from '@kestrel/core';
import type { DeepseekVLV2Processor, PreprocessResult, VlmImage } from './processor.js';
import { generateOptionsSchema, type MoeLanguageModel } from '@kestrel/moe';
import { tokenizeConversation, conversationImages, type ChatMessage, type ConversationTokenizer } from './conversation.js';

/**
 * What {@link chat} needs of a model (VisionLanguageModel is one): its processor, a text tokenizer, and a
 * token stream over a prompt with images. A narrow interface, so this file does not import the model.
 */
export interface ChatHost {
  readonly dir: string;
  readonly processor: Pick<DeepseekVLV2Processor, 'config' | 'preprocess' | 'tokenizeWithImages'>;
  readonly tokenizer: { encode(text: string): number[] } | null;
  /** the vision tower and projector over the prompt's images, with their times */
  prepareInputs(input: { inputIds: ArrayLike<number>; images: readonly VlmImage[]; preprocessed: PreprocessResult | null }): Promise<{ inputsEmbeds: Tensor<'f32'>; timings: { visionMs: number; projectorMs: number } }>;
  /** the language model that streams the answer from the prompt's embeddings */
  readonly language: Pick<MoeLanguageModel, 'stream'>;
}

export { formatConversation, tokenizeConversation, conversationImages, DEEPSEEK_TEMPLATE, type ChatMessage, type ChatContentPart, type ConversationTokenizer } from './conversation.js';

/** Options of {@link chat}: generation options plus an optional text callback for streaming. */
export const ChatOptionsSchema = generateOptionsSchema.extend({
  maxNewTokens: z.number().int().positive().default(256),
  /** tile the images (default: only when the conversation has at most 2, as DeepSeek-VL2) */
  cropping: z.boolean().optional(),
});
export type ChatOptions = z.input<typeof ChatOptionsSchema> & {
  /** called with each new piece of the answer as it is generated */
  onText?: (text: string) => void;
  /**
   * called once the prompt is ready (images decoded and tiled, tokens counted), before the first token
   * is generated: a server can answer a bad image or prompt with a plain error up to this point
   */
  onStart?: () => void;
};

/** Token counts and time of one answer. */
export interface ChatUsage {
  /** prompt length in tokens, image tokens included */
  promptTokens: number;
  /** image tokens in the prompt */
  imageTokens: number;
  /** generated tokens (EOS not counted) */
  completionTokens: number;
  /** wall time, milliseconds */
  ms: number;
}

/** Phases of one answer (milliseconds unless named otherwise). */
export interface ChatTimings {
  /** image decode, resize and tiling */
  preprocessMs: number;
  /** ViT tiles (all images, global views included) */
  tiles: number;
  /** vision tower, all tiles */
  visionMs: number;
  /** vision tower per tile */
  visionMsPerTile: number;
  projectorMs: number;
  /** the prompt through the language model, up to the first new token */
  prefillMs: number;
  /** from the call to the first new token (everything above) */
  firstTokenMs: number;
  /** after the first new token, to the last */
  decodeMs: number;
  /** prompt tokens per second of prefillMs */
  prefillTokS: number;
  /** new tokens after the first per second of decodeMs (0 with fewer than 2 tokens) */
  decodeTokS: number;
}

/** Result of {@link chat}. */
export interface ChatResult {
  message: { role: 'assistant'; content: string };
  /** the answer (same as message.content) */
  text: string;
  tokenIds: number[];
  usage: ChatUsage;
  /** where the time went, phase by phase (absent for a remote model: its server does not report phases) */
  timings?: ChatTimings;
  /** OpenAI's terms: 'length' when maxNewTokens was reached, else 'stop' (EOS or a stop token/string) */
  finishReason: 'stop' | 'length';
}

/** The model's tokenizer and processor as {@link tokenizeConversation} uses them (throws when the checkpoint has no tokenizer or BOS/EOS ids). */
export function conversationTokenizer(model: ChatHost): ConversationTokenizer {
  const tok = model.tokenizer;
  if (!tok) throw new KestrelError('E_MODEL_NOT_FOUND', `${model.dir} has no tokenizer.json; text prompts need one (use forward/generate with token ids otherwise)`);
  const proc = model.processor;
  const { bos_token_id: bosId, eos_token_id: eosId } = proc.config;
  if (bosId === undefined || eosId === undefined) throw new KestrelError('E_CHECKPOINT_FORMAT', `${model.dir}: no bos/eos token id in processor_config.json, tokenizer_config.json or language_config`);
  const encode = (t: string): number[] => tok.encode(t);
  return { imageToken: proc.config.image_token, bosId, eosId, encode, tokenizeWithImages: (t, n) => proc.tokenizeWithImages(t, n, encode, { bos: false }) };
}

/**
 * Answer a conversation with a VisionLanguageModel that has a tokenizer: the messages are rendered
 * in DeepSeek-VL2's template, `<image>` placeholders are expanded by the processor, and the answer is
 * generated (greedy by default) and decoded.
 *
 * @example
 * const r = await chat(vlm, [{ role: 'user', content: [{ type: 'image', image: 'part.jpg' }, { type: 'text', text: 'Any defect?' }] }]);
 * console.log(r.text);
 */
export async function chat(model: ChatHost, messages: readonly ChatMessage[], options?: ChatOptions): Promise<ChatResult> {
  const t0 = performance.now();
  const { onText, onStart, ...rest } = options ?? {};
  if (onText !== undefined && typeof onText !== 'function') throw new KestrelError('E_OPTIONS', 'onText must be a function');
  if (onStart !== undefined && typeof onStart !== 'function') throw new KestrelError('E_OPTIONS', 'onStart must be a function');
  const o = parseOptions(ChatOptionsSchema, rest, 'chat options');
  const conv = conversationTokenizer(model);
  const proc = model.processor;
  // validates the messages before any image is decoded
  const images = conversationImages(messages, proc.config.image_token);
  const pre = images.length ? await proc.preprocess(images, o.cropping !== undefined ? { cropping: o.cropping } : {}) : null;
  const tPre = performance.now();
  const { inputIds } = tokenizeConversation(messages, pre?.numImageTokens ?? [], conv);
  const { cropping: _c, ...gen } = o;
  const tokenIds: number[] = [];
  let text = '';
  onStart?.();
  // The model's stream() in two steps, so the vision and language phases are timed apart.
  const prepared = await model.prepareInputs({ inputIds, images, preprocessed: pre });
  const tLm = performance.now();
  let tFirst = 0;
  let tLast = 0;
  for await (const c of model.language.stream({ inputsEmbeds: prepared.inputsEmbeds, inputIds }, gen)) {
    tLast = performance.now();
    if (tokenIds.length === 0) tFirst = tLast;
    tokenIds.push(c.tokenId);
    if (c.text) { text += c.text; onText?.(c.text); }
  }
  const imageTokens = pre ? pre.numImageTokens.reduce((a, b) => a + b, 0) : 0;
  const tiles = pre?.pixelValues.shape[0] ?? 0;
  const prefillMs = tokenIds.length ? tFirst - tLm : 0;
  const decodeMs = tokenIds.length ? tLast - tFirst : 0;
  const timings: ChatTimings = {
    preprocessMs: tPre - t0, tiles, visionMs: prepared.timings.visionMs, visionMsPerTile: tiles ? prepared.timings.visionMs / tiles : 0,
    projectorMs: prepared.timings.projectorMs, prefillMs, firstTokenMs: tokenIds.length ? tFirst - t0 : 0, decodeMs,
    prefillTokS: prefillMs > 0 ? inputIds.length / (prefillMs / 1000) : 0,
    decodeTokS: decodeMs > 0 ? (tokenIds.length - 1) / (decodeMs / 1000) : 0,
  };
  return {
    message: { role: 'assistant', content: text },
    text,
    tokenIds,
    usage: { promptTokens: inputIds.length, imageTokens, completionTokens: tokenIds.length, ms: performance.now() - t0 },
    timings,
    finishReason: tokenIds.length < o.maxNewTokens ? 'stop' : 'length',
  };
}
