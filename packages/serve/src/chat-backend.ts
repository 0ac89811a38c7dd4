import { loadImage, type PixelImage } from '@kestrel/core';

/** One message as the chat backend takes it (images already decoded from data URIs into bytes). */
export interface BackendMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ({ type: 'text'; text: string } | { type: 'image'; image: Buffer })[];
}

/** Generation settings from the request. */
export interface BackendOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  /** 0 = off */
  topK?: number | undefined;
  seed?: number | undefined;
  /** strings that end the answer (cut before them) */
  stopStrings?: string[] | undefined;
  /** false keeps special tokens in the answer (vLLM's `skip_special_tokens`; DeepSeek-VL2 grounding tags) */
  skipSpecialTokens?: boolean | undefined;
  /** Refuse images over this many pixels (`E_IMAGE_TOO_LARGE`): the server's `maxImagePixels`. */
  maxImagePixels?: number | undefined;
  /** Called once the images are decoded and the prompt is ready, before the first token. */
  onStart?: () => void;
  onText?: (piece: string) => void;
}

/** A vision-language model behind /v1/chat/completions. */
export interface ChatBackend {
  /** The model id clients send as `model` and GET /v1/models lists. */
  name: string;
  /** Other names accepted as `model` (e.g. the checkpoint path as given). */
  aliases?: readonly string[];
  complete(messages: BackendMessage[], options: BackendOptions): Promise<{
    text: string; finishReason: 'stop' | 'length'; usage: { promptTokens: number; completionTokens: number };
  }>;
}

/**
 * A {@link ChatBackend} over Kestrel's `ask` pipeline (DeepSeek-VL2 family checkpoint directory), loaded
 * once in a worker thread: generation never holds the server's event loop, and tokens stream back as the
 * worker picks them. Its name is the folder's name; the path as given is an alias. Images are decoded
 * here (sharp works on libuv's threads), against the request's `maxImagePixels`, before the model sees them.
 */
export async function createVlmChatBackend(dir: string): Promise<ChatBackend> {
  const { pipeline } = await import('@kestrel/pipelines');
  const ask = await pipeline('ask', { model: dir, maxNewTokens: 4096 });
  const name = dir.split(/[\\/]/).filter(Boolean).pop() ?? 'vlm';
  return {
    name,
    aliases: [dir],
    async complete(messages, o) {
      const decoded = await Promise.all(messages.map(async (m) => typeof m.content === 'string' ? { role: m.role, content: m.content } : {
        role: m.role,
        content: await Promise.all(m.content.map(async (p) => p.type === 'text' ? p : { type: 'image' as const, image: await loadImage(p.image, o.maxImagePixels !== undefined ? { maxPixels: o.maxImagePixels } : {}) as PixelImage })),
      }));
      const r = await ask.chat(decoded, {
        maxNewTokens: o.maxNewTokens, temperature: o.temperature, topP: o.topP,
        ...(o.topK ? { topK: o.topK } : {}), ...(o.stopStrings?.length ? { stopStrings: o.stopStrings } : {}), ...(o.skipSpecialTokens === false ? { skipSpecialTokens: false } : {}),
        ...(o.seed !== undefined ? { seed: o.seed } : {}), ...(o.onText ? { onText: o.onText } : {}), ...(o.onStart ? { onStart: o.onStart } : {}),
      });
      return { text: r.text, finishReason: r.finishReason, usage: { promptTokens: r.usage.promptTokens, completionTokens: r.usage.completionTokens } };
    },
  };
}
