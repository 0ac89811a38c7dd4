import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KestrelError } from '@kestrel/core';
import { Tokenizer } from '@huggingface/tokenizers';

/** A tokenizer.json (+ tokenizer_config.json) loaded with @huggingface/tokenizers. */
export class TextTokenizer {
  private constructor(private readonly tok: Tokenizer) {}

  /** Load `<dir>/tokenizer.json`; null when the directory has none. */
  static async load(dir: string): Promise<TextTokenizer | null> {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${join(dir, 'tokenizer.json')} is not readable JSON (${(e as Error).message})`);
    }
    let config: unknown = {};
    try {
      config = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'));
    } catch { /* optional */ }
    try {
      return new TextTokenizer(new Tokenizer(json as object, config as object));
    } catch (e) {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${join(dir, 'tokenizer.json')} could not be loaded: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Text -> token ids (special tokens such as BOS added as tokenizer.json's post-processor says). */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  /** Token ids -> text. */
  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.tok.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? true });
  }

  /** Id of a token string, if it exists. */
  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}
