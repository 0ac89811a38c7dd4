import { z } from 'zod';
import { KestrelError, parseOptions, Tensor } from '@kestrel/core';
import type { KvCache } from './kv-cache.js';
import type { ForwardInput, ForwardOutput, ForwardOptions } from './forward-types.js';
import type { TextTokenizer } from './tokenizer.js';
import { pickToken, SeededRandom, type SamplingParams } from './sampling.js';

/** Options of `generate` / `stream`. */
export const generateOptionsSchema = z.object({
  /** most tokens to generate */
  maxNewTokens: z.number().int().nonnegative().default(128),
  /** 0 = greedy (default); > 0 samples */
  temperature: z.number().nonnegative().default(0),
  /** keep the k most probable ids before sampling (0 = off) */
  topK: z.number().int().nonnegative().default(0),
  /** nucleus sampling mass (1 = off) */
  topP: z.number().gt(0).max(1).default(1),
  /** transformers-style repetition penalty (1 = off) */
  repetitionPenalty: z.number().positive().default(1),
  /** PRNG seed for sampling (default: random) */
  seed: z.number().int().optional(),
  /** stop at the model's EOS id(s) */
  stopOnEos: z.boolean().default(true),
  /** extra ids that end generation (the stop id is included in the output, like EOS) */
  stopTokens: z.array(z.number().int().nonnegative()).default([]),
  /** strings that end generation (needs a tokenizer); the text is cut before the stop string */
  stopStrings: z.array(z.string().min(1)).default([]),
  /** drop special tokens from the decoded text (false keeps them, e.g. DeepSeek-VL2's `<|ref|>` grounding tags) */
  skipSpecialTokens: z.boolean().default(true),
  /** cancels generation: the call rejects with E_ABORTED */
  signal: z.instanceof(AbortSignal).optional(),
}).strict();
export type GenerateOptions = z.input<typeof generateOptionsSchema>;
type ParsedGenerateOptions = z.output<typeof generateOptionsSchema>;

/** Input of `generate`: token ids, embeddings, or text (with a tokenizer). */
export interface GenerateInput {
  inputIds?: ArrayLike<number>;
  /** [T, H]; `inputIds` may be given too (used only for the repetition penalty) */
  inputsEmbeds?: Tensor | Float32Array;
  /** text prompt, tokenized with the checkpoint's tokenizer.json */
  prompt?: string;
}

/** Why generation ended. */
export type FinishReason = 'eos' | 'stop_token' | 'stop_string' | 'length';

/** Result of `generate`. */
export interface GenerateResult {
  /** the new tokens only */
  tokenIds: number[];
  /** decoded text of the new tokens (when a tokenizer is available), cut before a stop string */
  text?: string;
  finishReason: FinishReason;
}

/** One streamed token. */
export interface StreamChunk {
  tokenId: number;
  /** index of this token among the new tokens */
  index: number;
  /** new text since the previous chunk (when a tokenizer is available; may be '' while a character or stop string is incomplete) */
  text?: string;
}

/** What generation needs from the model (keeps this module free of the class). */
export interface GenerationHost {
  readonly vocab: number;
  readonly eosIds: readonly number[];
  readonly tokenizer: TextTokenizer | null;
  createCache(capacity?: number): KvCache;
  forwardBatch(inputs: ForwardInput[], options?: ForwardOptions): ForwardOutput[];
  /**
   * Optional: the greedy next token of each sequence (last row's argmax), when the host can pick it without
   * returning the logits (a model on the GPU copies back only the ids); null when it cannot.
   */
  greedyTokens?(inputs: ForwardInput[]): number[] | null;
}

function aborted(): KestrelError {
  return new KestrelError('E_ABORTED', 'generation was cancelled');
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Per-sequence state of a running generation. */
class SeqState {
  readonly out: number[] = [];
  done: FinishReason | null = null;
  emittedText = '';
  finalText: string | undefined;
  constructor(readonly prompt: number[], readonly cache: KvCache, readonly rng: SeededRandom) {}
}

function resolveInput(host: GenerationHost, inp: GenerateInput): { forward: ForwardInput; promptIds: number[] } {
  if (inp.prompt !== undefined) {
    if (!host.tokenizer) throw new KestrelError('E_OPTIONS', 'a text prompt needs tokenizer.json in the model directory; pass inputIds instead');
    const ids = host.tokenizer.encode(inp.prompt);
    return { forward: { inputIds: ids }, promptIds: ids };
  }
  const ids = inp.inputIds ? Array.from(inp.inputIds) : [];
  if (inp.inputsEmbeds !== undefined) return { forward: { inputsEmbeds: inp.inputsEmbeds }, promptIds: ids };
  if (!ids.length) throw new KestrelError('E_OPTIONS', 'generate needs inputIds, inputsEmbeds or prompt');
  return { forward: { inputIds: ids }, promptIds: ids };
}

/** Longest suffix of `text` that is a proper prefix of some stop string (held back while streaming). */
function pendingStopPrefix(text: string, stops: string[]): number {
  let keep = 0;
  for (const s of stops) for (let n = Math.min(s.length - 1, text.length); n > keep; n--) if (text.endsWith(s.slice(0, n))) { keep = n; break; }
  return keep;
}

/**
 * Generate for a batch of sequences together (one forward call per step for all live sequences),
 * yielding each new token as it is chosen.
 */
export async function* generateTokens(host: GenerationHost, inputs: GenerateInput[], options: GenerateOptions | undefined, onDone: (states: GenerateResult[]) => void): AsyncGenerator<StreamChunk & { sequence: number }> {
  const o: ParsedGenerateOptions = parseOptions(generateOptionsSchema, options, 'generate options');
  if (o.stopStrings.length && !host.tokenizer) throw new KestrelError('E_OPTIONS', 'stopStrings need tokenizer.json in the model directory');
  for (const t of o.stopTokens) if (t >= host.vocab) throw new KestrelError('E_OPTIONS', `stop token ${t} is outside the vocabulary (${host.vocab})`);
  const params: SamplingParams = { temperature: o.temperature, topK: o.topK, topP: o.topP, repetitionPenalty: o.repetitionPenalty };
  const eos = new Set(o.stopOnEos ? host.eosIds : []);
  const stopIds = new Set(o.stopTokens);
  const baseSeed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
  const resolved = inputs.map((i) => resolveInput(host, i));
  const states = resolved.map((r, i) => new SeqState(r.promptIds, host.createCache(64), new SeededRandom(baseSeed + i)));
  const tok = host.tokenizer;
  if (o.signal?.aborted) throw aborted();

  // Greedy without a repetition penalty needs only each row's argmax: let the host pick it where it can.
  const greedyOnHost = params.temperature === 0 && params.repetitionPenalty === 1 && typeof host.greedyTokens === 'function';
  // per sequence: the logits of its last step, or the token the host already picked
  const logits: Array<Float32Array | undefined> = [];
  const picked: number[] = [];
  const advance = (ins: ForwardInput[], seqs: number[]): void => {
    const g = greedyOnHost ? host.greedyTokens!(ins) : null;
    if (g) {
      seqs.forEach((i, j) => { picked[i] = g[j]!; logits[i] = undefined; });
      return;
    }
    const res = host.forwardBatch(ins, { lastOnly: true });
    seqs.forEach((i, j) => { logits[i] = res[j]!.logits.data; });
  };
  if (o.maxNewTokens > 0) {
    advance(resolved.map((r, i) => ({ ...r.forward, cache: states[i]!.cache })), resolved.map((_, i) => i));
  } else {
    for (const s of states) s.done = 'length';
  }
  for (let step = 0; step < o.maxNewTokens; step++) {
    const live: number[] = [];
    for (let i = 0; i < states.length; i++) {
      const s = states[i]!;
      if (s.done) continue;
      const li = logits[i];
      const id = li ? pickToken(li, params, params.repetitionPenalty === 1 ? [] : [...s.prompt, ...s.out], s.rng) : picked[i]!;
      s.out.push(id);
      let text: string | undefined;
      if (eos.has(id)) s.done = 'eos';
      else if (stopIds.has(id)) s.done = 'stop_token';
      if (tok) {
        const full = tok.decode(s.out, { skipSpecialTokens: o.skipSpecialTokens });
        let visible = full;
        const hit = o.stopStrings.map((ss) => full.indexOf(ss)).filter((p) => p >= 0);
        if (hit.length) { visible = full.slice(0, Math.min(...hit)); s.done = 'stop_string'; }
        if (!s.done && s.out.length >= o.maxNewTokens) s.done = 'length';
        let upto = visible.length;
        if (!s.done) {
          upto -= pendingStopPrefix(visible, o.stopStrings);
          // hold back an incomplete multi-byte character
          while (upto > 0 && visible.charCodeAt(upto - 1) === 0xfffd) upto--;
        }
        const emit = visible.slice(0, upto);
        text = emit.startsWith(s.emittedText) ? emit.slice(s.emittedText.length) : emit;
        s.emittedText = emit;
        s.finalText = visible;
      }
      if (!s.done && s.out.length >= o.maxNewTokens) s.done = 'length';
      if (!s.done) live.push(i);
      yield { sequence: i, tokenId: id, index: s.out.length - 1, ...(text !== undefined ? { text } : {}) };
      if (o.signal?.aborted) throw aborted();
    }
    if (!live.length) break;
    await tick(); // let timers / abort signals / other requests run between steps
    if (o.signal?.aborted) throw aborted();
    advance(live.map((i) => ({ inputIds: [states[i]!.out.at(-1)!], cache: states[i]!.cache })), live);
  }
  onDone(states.map((s) => ({ tokenIds: s.out, finishReason: s.done ?? 'length', ...(s.finalText !== undefined ? { text: s.finalText } : tok ? { text: '' } : {}) })));
}
