import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KestrelError } from '@kestrel/core';
import { Tokenizer } from '@huggingface/tokenizers';

/** A tokenizer.json (+ tokenizer_config.json) loaded with @huggingface/tokenizers. */
export class TextTokenizer {
  private constructor(private readonly tok: Tokenizer) {}

  /**
   * Load `<dir>/tokenizer.json`; null when the directory has none. `addSpecialTokens` are added as
   * special tokens when the file lacks them, with the next free ids in the order given, as
   * transformers' `add_special_tokens` does (DeepSeek-VL2's processor adds its tokens this way).
   */
  static async load(dir: string, options: { addSpecialTokens?: readonly string[] } = {}): Promise<TextTokenizer | null> {
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
    if (options.addSpecialTokens?.length) json = withSpecialTokens(json, options.addSpecialTokens);
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

interface AddedToken { id: number; content: string }

/** tokenizer.json with `tokens` appended to `added_tokens` (next free ids) where neither the vocab nor the added tokens hold them. */
function withSpecialTokens(json: unknown, tokens: readonly string[]): unknown {
  if (json === null || typeof json !== 'object') return json;
  const j = json as { added_tokens?: AddedToken[]; model?: { vocab?: Record<string, number> | Array<[string, number]> } };
  const added = Array.isArray(j.added_tokens) ? [...j.added_tokens] : [];
  const vocab = j.model?.vocab;
  const ids = new Map<string, number>();
  if (Array.isArray(vocab)) vocab.forEach(([t], i) => ids.set(t, i)); // Unigram: [piece, score], id = index
  else if (vocab && typeof vocab === 'object') for (const [t, i] of Object.entries(vocab)) ids.set(t, i);
  for (const a of added) ids.set(a.content, a.id);
  // a loop, not Math.max(...ids): a real vocabulary (~100k ids) overflows the argument stack
  let next = 0;
  for (const i of ids.values()) if (i >= next) next = i + 1;
  for (const t of tokens) {
    if (ids.has(t)) continue;
    added.push({ id: next, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true } as AddedToken);
    ids.set(t, next++);
  }
  return { ...j, added_tokens: added };
}
