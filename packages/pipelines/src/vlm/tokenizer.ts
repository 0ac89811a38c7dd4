import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { KestrelError } from '@kestrel/core';

/**
 * The text tokenizer of a VLM checkpoint (`tokenizer.json` + optional `tokenizer_config.json`), run
 * by @huggingface/tokenizers. Encodes without adding special tokens (the processor places BOS and
 * image tokens itself, as DeepSeek-VL2 does).
 */
export class TextTokenizer {
  private readonly tok: Tokenizer;
  /** Ids of special (added) tokens, skipped when decoding answers. */
  readonly specialIds: ReadonlySet<number>;

  private constructor(tok: Tokenizer) {
    this.tok = tok;
    const ids = new Set<number>();
    for (const [id, t] of tok.get_added_tokens_decoder()) if ((t as { special?: boolean }).special) ids.add(id);
    this.specialIds = ids;
  }

  /** Load from a checkpoint directory; `null` when it has no tokenizer.json. */
  static async load(dir: string): Promise<TextTokenizer | null> {
    const path = join(dir, 'tokenizer.json');
    if (!(await stat(path).catch(() => null))) return null;
    let json: unknown;
    let config: unknown = {};
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
      const cpath = join(dir, 'tokenizer_config.json');
      if (await stat(cpath).catch(() => null)) config = JSON.parse(await readFile(cpath, 'utf8'));
    } catch (e) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}: tokenizer.json / tokenizer_config.json is not valid JSON (${(e as Error).message})`, { cause: e });
    }
    try {
      return new TextTokenizer(new Tokenizer(json as object, config as object));
    } catch (e) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${path}: unsupported tokenizer (${(e as Error).message})`, { cause: e });
    }
  }

  /** Token ids of `text`, no special tokens added (special-token strings in the text still map to their ids). */
  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; special tokens are dropped unless `skipSpecial` is false. */
  decode(ids: readonly number[], skipSpecial = true): string {
    return this.tok.decode([...ids], { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }

  /** Id of a token string, if in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
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
