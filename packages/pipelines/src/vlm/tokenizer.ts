import { TextTokenizer as MoeTokenizer } from '@kestrel/moe';

/**
 * The text tokenizer of a VLM checkpoint (`tokenizer.json` + optional `tokenizer_config.json`, run by
 * @huggingface/tokenizers through @kestrel/moe). Encodes without adding special tokens: the processor
 * places BOS and the image tokens itself, as DeepSeek-VL2's `tokenize_with_images` does.
 */
export class TextTokenizer {
  private constructor(private readonly tok: MoeTokenizer) {}

  /**
   * Load from a checkpoint directory; `null` when it has no tokenizer.json. Tokens in
   * `addSpecialTokens` that the file lacks are added with the next free ids (see
   * {@link processorSpecialTokens}).
   */
  static async load(dir: string, addSpecialTokens: readonly string[] = []): Promise<TextTokenizer | null> {
    const t = await MoeTokenizer.load(dir, { addSpecialTokens });
    return t ? new TextTokenizer(t) : null;
  }

  /** Token ids of `text`, no special tokens added (special-token strings in the text still map to their ids). */
  encode(text: string): number[] {
    return this.tok.encode(text, { addSpecialTokens: false });
  }

  /** Text of `ids`; special tokens are dropped unless `skipSpecial` is false. */
  decode(ids: readonly number[], skipSpecial = true): string {
    return this.tok.decode([...ids], { skipSpecialTokens: skipSpecial });
  }

  /** Id of a token string, if in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.tok.tokenToId(token);
  }
}

/** The grounding tokens DeepSeek-VL2's processor adds (`<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2]]<|/det|>`). */
export const GROUNDING_TOKENS = ['<|ref|>', '<|/ref|>', '<|det|>', '<|/det|>', '<|grounding|>'] as const;
/** The chat roles of the "deepseek" template, added as special tokens by the processor. */
export const CHAT_TOKENS = ['<|User|>', '<|Assistant|>'] as const;

/**
 * The special tokens `DeepseekVLV2Processor.__init__` adds to the tokenizer, in its order: the pad
 * token (only when tokenizer_config.json names none), the image token, the five grounding tokens and
 * the two chat roles. Tokens the tokenizer already has keep their ids.
 */
export function processorSpecialTokens(opts: { padToken: string; imageToken: string; tokenizerHasPad: boolean }): string[] {
  return [...(opts.tokenizerHasPad ? [] : [opts.padToken]), opts.imageToken, ...GROUNDING_TOKENS, ...CHAT_TOKENS];
}
