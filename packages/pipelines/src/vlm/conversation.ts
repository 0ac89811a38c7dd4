import { KestrelError } from '@kestrel/core';
import type { VlmImage, TokenizedPrompt } from './processor.js';

/** One part of a message's content. */
export type ChatContentPart = { type: 'text'; text: string } | { type: 'image'; image: VlmImage };

/** A chat message in the OpenAI-style shape: content is a string or a list of text / image parts. */
export interface ChatMessage {
  /** DeepSeek's own role names are accepted too: `<|User|>` / `User`, `<|Assistant|>` / `Assistant` */
  role: 'system' | 'user' | 'assistant' | '<|User|>' | '<|Assistant|>' | 'User' | 'Assistant';
  content: string | ChatContentPart[];
  /**
   * DeepSeek's own shape: a user message whose string content holds `<image>` placeholders lists its
   * images here, in order (`{ role: 'user', content: '<image>\n<|ref|>the car<|/ref|>.', images: ['a.jpg'] }`).
   */
  images?: readonly VlmImage[];
}

/** DeepSeek-VL2's "deepseek" conversation template (conversation.py): roles and separators. */
export const DEEPSEEK_TEMPLATE = { user: '<|User|>', assistant: '<|Assistant|>', sep: '\n\n', sep2: '<｜end▁of▁sentence｜>' } as const;

interface Turn { role: 'user' | 'assistant'; text: string; images: number }

/** Validate messages; text of each turn (parts joined by "\n", image parts as the image token), stripped as DeepSeek does. */
const ROLE_ALIASES: Record<string, 'user' | 'assistant'> = { '<|User|>': 'user', User: 'user', '<|Assistant|>': 'assistant', Assistant: 'assistant' };

/** DeepSeek's role names mapped to ours; DeepSeek's closing `{ role: '<|Assistant|>', content: '' }` dropped (its processor strips it too). */
function normalize(messages: readonly ChatMessage[]): ChatMessage[] {
  const out = messages.map((m) => (m && typeof m === 'object' && typeof m.role === 'string' && ROLE_ALIASES[m.role] ? { ...m, role: ROLE_ALIASES[m.role]! } : m));
  const last = out[out.length - 1];
  if (out.length > 1 && last?.role === 'assistant' && typeof last.content === 'string' && last.content.trim() === '' && last.images === undefined) out.pop();
  return out;
}

function parseMessages(input: readonly ChatMessage[], imageToken: string): { system: string | null; turns: Turn[]; images: VlmImage[] } {
  if (!Array.isArray(input) || input.length === 0) throw new KestrelError('E_OPTIONS', 'chat needs at least one message');
  const messages = normalize(input);
  const images: VlmImage[] = [];
  let system: string | null = null;
  const turns: Turn[] = [];
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object') throw new KestrelError('E_OPTIONS', `messages[${i}] is not an object`);
    const before = images.length;
    let text: string;
    if (m.images !== undefined && (m.role !== 'user' || typeof m.content !== 'string' || !Array.isArray(m.images))) {
      throw new KestrelError('E_OPTIONS', `messages[${i}].images: only a user message with string content can list images (use image parts otherwise)`);
    }
    if (typeof m.content === 'string') {
      text = m.content;
      images.push(...(m.images ?? []));
    } else if (Array.isArray(m.content)) {
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
    const placeholders = text.split(imageToken).length - 1;
    if (placeholders !== images.length - before) {
      throw new KestrelError('E_IMAGE_TOKENS', `messages[${i}] has ${placeholders} "${imageToken}" placeholder(s) but ${images.length - before} image(s)`);
    }
    if (m.role === 'system') {
      if (i !== 0) throw new KestrelError('E_OPTIONS', 'a system message may only come first');
      system = text.trim();
      return;
    }
    const want = turns.length % 2 === 0 ? 'user' : 'assistant';
    if (m.role !== want) throw new KestrelError('E_OPTIONS', `messages[${i}] has role "${String(m.role)}" but a ${want} message was expected (user and assistant must alternate, starting with user)`);
    turns.push({ role: m.role, text: text.trim(), images: images.length - before });
  });
  if (turns.length % 2 === 0) throw new KestrelError('E_OPTIONS', 'the last message must be from the user');
  return { system, turns, images };
}

/** The images of a conversation in prompt order (validates the messages; E_OPTIONS when they are malformed). */
export function conversationImages(messages: readonly ChatMessage[], imageToken = '<image>'): VlmImage[] {
  return parseMessages(messages, imageToken).images;
}

/**
 * The conversation as DeepSeek-VL2 displays it (`format_messages`, the `sft_format` it prints):
 * `[system + "\n\n"] "<|User|>: " + text + "\n\n" + "<|Assistant|>: " + answer + EOS ... "<|Assistant|>:"`,
 * stripped. Image parts become `<image>` placeholders (parts joined by "\n"); images are returned in order.
 * The token ids the model sees differ in two places; see {@link tokenizeConversation}.
 */
export function formatConversation(messages: readonly ChatMessage[], imageToken = '<image>'): { prompt: string; images: VlmImage[] } {
  const { system, turns, images } = parseMessages(messages, imageToken);
  const T = DEEPSEEK_TEMPLATE;
  let ret = system ? system + T.sep : '';
  turns.forEach((t, i) => { ret += `${t.role === 'user' ? T.user : T.assistant}: ${t.text}${i % 2 === 0 ? T.sep : T.sep2}`; });
  ret += `${T.assistant}:`;
  return { prompt: ret.trim(), images };
}

/** What {@link tokenizeConversation} needs from the processor and tokenizer. */
export interface ConversationTokenizer {
  imageToken: string;
  bosId: number;
  eosId: number;
  /** text -> ids, no special tokens added (special-token strings map to their ids) */
  encode: (text: string) => number[];
  /** `DeepseekVLV2Processor.tokenizeWithImages` without BOS */
  tokenizeWithImages: (text: string, numImageTokens: readonly number[]) => TokenizedPrompt;
}

/**
 * Token ids of a conversation exactly as `DeepseekVLV2Processor.format_messages_v2` builds them in
 * inference mode: BOS; a system message's text on its own (no separator follows it); each user turn
 * as `"<|User|>: " + text + "\n\n<|Assistant|>:"` with its `<image>` placeholders expanded to
 * `numImageTokens` (in image order across the conversation); each assistant turn as its text + EOS;
 * each piece encoded separately. (So the ids spell `<|Assistant|>:A gear.` where the displayed
 * prompt has a space, and `Be brief.<|User|>` where it has "\n\n".)
 */
export function tokenizeConversation(messages: readonly ChatMessage[], numImageTokens: readonly number[], tok: ConversationTokenizer): TokenizedPrompt & { images: VlmImage[] } {
  const { system, turns, images } = parseMessages(messages, tok.imageToken);
  if (numImageTokens.length !== images.length) {
    throw new KestrelError('E_IMAGE_TOKENS', `the conversation has ${images.length} image(s) but ${numImageTokens.length} image-token count(s) were given`);
  }
  const ids: number[] = [tok.bosId];
  const mask: number[] = [0];
  const text = (s: string): void => { for (const id of tok.encode(s)) { ids.push(id); mask.push(0); } };
  if (system !== null) text(system);
  let img = 0;
  for (const t of turns) {
    if (t.role === 'assistant') {
      text(t.text);
      ids.push(tok.eosId);
      mask.push(0);
      continue;
    }
    const q = `${DEEPSEEK_TEMPLATE.user}: ${t.text}${DEEPSEEK_TEMPLATE.sep}${DEEPSEEK_TEMPLATE.assistant}:`;
    const r = tok.tokenizeWithImages(q, numImageTokens.slice(img, img + t.images));
    img += t.images;
    ids.push(...r.inputIds);
    mask.push(...r.imagesSeqMask);
  }
  return { inputIds: Int32Array.from(ids), imagesSeqMask: Uint8Array.from(mask), images };
}
