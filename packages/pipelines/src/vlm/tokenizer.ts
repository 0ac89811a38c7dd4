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

/**
 * Incremental detokenizer: feed token ids one at a time, get the new text. Text ending in an
 * incomplete UTF-8 sequence (U+FFFD) is held back until the next token completes it.
 */
export class StreamDecoder {
  private ids: number[] = [];
  private emitted = 0;
  constructor(private readonly tok: TextTokenizer) {}

  /** Add a token; returns the text it completes (possibly ''). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.tok.decode(this.ids);
    if (text.endsWith('\uFFFD')) return '';
    const out = text.slice(this.emitted);
    this.emitted = text.length;
    return out;
  }

  /** Whatever is left (e.g. a final incomplete character). */
  flush(): string {
    const text = this.tok.decode(this.ids);
    const out = text.slice(this.emitted);
    this.emitted = text.length;
    return out;
  }
}
