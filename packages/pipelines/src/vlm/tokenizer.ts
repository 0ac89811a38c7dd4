import { TextTokenizer as MoeTokenizer } from '@kestrel/moe';

/**
 * The text tokenizer of a VLM checkpoint (`tokenizer.json` + optional `tokenizer_config.json`, run by
 * @huggingface/tokenizers through @kestrel/moe). Encodes without adding special tokens: the processor
 * places BOS and the image tokens itself, as DeepSeek-VL2's `tokenize_with_images` does.
 */
export class TextTokenizer {
  private constructor(private readonly tok: MoeTokenizer) {}

  /** Load from a checkpoint directory; `null` when it has no tokenizer.json. */
  static async load(dir: string): Promise<TextTokenizer | null> {
    const t = await MoeTokenizer.load(dir);
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
