/**
 * A stand-in tokenizer.json for the random-weight presets (DeepSeek's own is not redistributed here): byte-level
 * BPE over the 256 byte symbols, no merges, padded with filler tokens to the model's vocabulary so every id the
 * random model picks decodes; the special tokens DeepSeek-VL2's processor adds sit at the top of the vocabulary.
 */

/** The special tokens of DeepSeek-VL2's processor (BOS and EOS first, as in DeepSeek's tokenizers). */
export const VL2_SPECIAL_TOKENS = ['<｜▁pad▁｜>', '<image>', '<|ref|>', '<|/ref|>', '<|det|>', '<|/det|>', '<|grounding|>', '<|User|>', '<|Assistant|>'];
const BOS = '<｜begin▁of▁sentence｜>';
const EOS = '<｜end▁of▁sentence｜>';

/** GPT-2's byte -> printable character table (what a ByteLevel pre-tokenizer emits). */
function byteSymbols(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + extra++);
  return out;
}

/** tokenizer.json and tokenizer_config.json for a vocabulary of `vocab` ids. */
export function standInTokenizer(vocab: number): { tokenizer: object; config: object } {
  const v: Record<string, number> = { [BOS]: 0, [EOS]: 1 };
  byteSymbols().forEach((s, i) => { v[s] = 2 + i; });
  const firstSpecial = vocab - VL2_SPECIAL_TOKENS.length;
  for (let id = 258; id < firstSpecial; id++) v[`<filler_${id}>`] = id;
  const added = [BOS, EOS, ...VL2_SPECIAL_TOKENS].map((content, i) => ({
    id: i < 2 ? i : firstSpecial + i - 2, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  for (const a of added) v[a.content] = a.id;
  const tokenizer = {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: v, merges: [] },
  };
  const config = { add_bos_token: false, add_eos_token: false, bos_token: BOS, eos_token: EOS, pad_token: '<｜▁pad▁｜>', tokenizer_class: 'LlamaTokenizerFast', model_max_length: 16384 };
  return { tokenizer, config };
}
