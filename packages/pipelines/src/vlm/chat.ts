import { z } from 'zod';
import { KestrelError, parseOptions } from '@kestrel/core';
import type { VlmImage } from './processor.js';
import type { VisionLanguageModel } from './vision-language-model.js';
import { generateOptionsSchema } from '@kestrel/moe';

/** One part of a message's content. */
export type ChatContentPart = { type: 'text'; text: string } | { type: 'image'; image: VlmImage };

/** A chat message in the OpenAI-style shape: content is a string or a list of text / image parts. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ChatContentPart[];
}

/** Options of {@link chat}: generation options plus an optional text callback for streaming. */
export const ChatOptionsSchema = generateOptionsSchema.extend({
  maxNewTokens: z.number().int().positive().default(256),
  /** tile the images (default: only when the conversation has at most 2, as DeepSeek-VL2) */
  cropping: z.boolean().optional(),
});
export type ChatOptions = z.input<typeof ChatOptionsSchema> & {
  /** called with each new piece of the answer as it is generated */
  onText?: (text: string) => void;
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
  /** where the time went, phase by phase */
  timings: ChatTimings;
  /** OpenAI's terms: 'length' when maxNewTokens was reached, else 'stop' (EOS or a stop token/string) */
  finishReason: 'stop' | 'length';
}

/** DeepSeek-VL2's "deepseek" conversation template: roles and separators. */
const USER = '<|User|>';
const ASSISTANT = '<|Assistant|>';
const SEP = '\n\n';
const SEP2 = '<｜end▁of▁sentence｜>';

/**
 * Render messages as DeepSeek-VL2's `deepseek` template does (`SeparatorStyle.DeepSeek`):
 * `[system + "\n\n"] "<|User|>: " + text + "\n\n" + "<|Assistant|>: " + answer + EOS ... "<|Assistant|>:"`,
 * stripped. Image parts become `<image>` placeholders (parts joined by "\n"); images are returned in order.
 */
export function formatConversation(messages: readonly ChatMessage[], imageToken = '<image>'): { prompt: string; images: VlmImage[] } {
  if (!Array.isArray(messages) || messages.length === 0) throw new KestrelError('E_OPTIONS', 'chat needs at least one message');
  const images: VlmImage[] = [];
  let system = '';
  const turns: [string, string][] = [];
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw new KestrelError('E_OPTIONS', `messages[${i}] is not an object`);
    let text: string;
    if (typeof m.content === 'string') text = m.content;
    else if (Array.isArray(m.content)) {
      text = (m.content as ChatContentPart[]).map((p: ChatContentPart, j: number): string => {
        if (p?.type === 'text' && typeof p.text === 'string') return p.text;
        if (p?.type === 'image' && p.image !== undefined && p.image !== null) {
          if (m.role !== 'user') throw new KestrelError('E_OPTIONS', `messages[${i}]: only user messages can hold images`);
          images.push(p.image);
          return imageToken;
        }
        throw new KestrelError('E_OPTIONS', `messages[${i}].content[${j}] must be {type:'text', text} or {type:'image', image}`);
      }).join('\n');
    } else throw new KestrelError('E_OPTIONS', `messages[${i}].content must be a string or an array of parts`);
    if (m.role === 'system') {
      if (i !== 0) throw new KestrelError('E_OPTIONS', 'a system message may only come first');
      system = text;
      return;
    }
    const want = turns.length % 2 === 0 ? 'user' : 'assistant';
    if (m.role !== want) throw new KestrelError('E_OPTIONS', `messages[${i}] has role "${String(m.role)}" but a ${want} message was expected (user and assistant must alternate, starting with user)`);
    turns.push([m.role === 'user' ? USER : ASSISTANT, text.trim()]);
  });
  if (turns.length % 2 === 0) throw new KestrelError('E_OPTIONS', 'the last message must be from the user');
  let ret = system ? system + SEP : '';
  turns.forEach(([role, msg], i) => { ret += `${role}: ${msg}${i % 2 === 0 ? SEP : SEP2}`; });
  ret += `${ASSISTANT}:`;
  return { prompt: ret.trim(), images };
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
export async function chat(model: VisionLanguageModel, messages: readonly ChatMessage[], options?: ChatOptions): Promise<ChatResult> {
  const t0 = performance.now();
  const { onText, ...rest } = options ?? {};
  if (onText !== undefined && typeof onText !== 'function') throw new KestrelError('E_OPTIONS', 'onText must be a function');
  const o = parseOptions(ChatOptionsSchema, rest, 'chat options');
  const tok = model.tokenizer;
  if (!tok) throw new KestrelError('E_MODEL_NOT_FOUND', `${model.dir} has no tokenizer.json; text prompts need one (use forward/generate with token ids otherwise)`);
  const { prompt, images } = formatConversation(messages, model.processor.config.image_token);
  const pre = images.length ? await model.processor.preprocess(images, o.cropping !== undefined ? { cropping: o.cropping } : {}) : null;
  const tPre = performance.now();
  const { inputIds } = model.processor.tokenizeWithImages(prompt, pre?.numImageTokens ?? [], (t) => tok.encode(t));
  const { cropping: _c, ...gen } = o;
  const tokenIds: number[] = [];
  let text = '';
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
