/** Generation: sampling determinism and filters, stops, streaming, cancellation, tokenizer.json. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm, cp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKestrelError } from '@kestrel/core';
import { MoeLanguageModel, samplingProbs, applyRepetitionPenalty, SeededRandom } from './index.js';

const FIX = fileURLToPath(new URL('../../../test/fixtures/lm/', import.meta.url));
const PROMPT = [0, 17, 230, 45, 9, 12, 101];
// A/case_short's golden greedy tokens
const GREEDY = [250, 205, 121, 82, 234, 246, 238, 80, 207, 22, 80, 238, 82, 50, 29, 88];

let model: MoeLanguageModel;
let work: string;
beforeAll(async () => {
  model = await MoeLanguageModel.load(`${FIX}A`, { backend: 'portable' });
  work = await mkdtemp(join(tmpdir(), 'kestrel-gen-'));
});
afterAll(async () => { model.dispose(); await rm(work, { recursive: true, force: true }); });

describe('sampling filters', () => {
  it('top-k keeps exactly the k largest, top-p keeps the smallest prefix reaching p', () => {
    const logits = Float32Array.from([1, 3, 2, 0.5, 2.5, -1]);
    const pk = samplingProbs(logits, { temperature: 1, topK: 2, topP: 1 });
    expect(Array.from(pk, (v) => v > 0)).toEqual([false, true, false, false, true, false]);
    expect(pk[1]! / pk[4]!).toBeCloseTo(Math.exp(0.5), 12);
    const z = Array.from(logits).reduce((a, b) => a + Math.exp(b), 0);
    const p = Array.from(logits, (v) => Math.exp(v) / z);
    // sorted descending: 3 (idx1), 2.5 (idx4), 2 (idx2), ... keep while mass of those above < topP
    const topP = p[1]! + p[4]! - 1e-9;
    const pp = samplingProbs(logits, { temperature: 1, topK: 0, topP });
    expect(Array.from(pp, (v) => v > 0)).toEqual([false, true, false, false, true, false]);
    // the most probable id always survives
    const one = samplingProbs(logits, { temperature: 1, topK: 0, topP: 1e-6 });
    expect(Array.from(one, (v) => v > 0)).toEqual([false, true, false, false, false, false]);
    // temperature sharpens
    const t = samplingProbs(logits, { temperature: 0.5, topK: 0, topP: 1 });
    expect(t[1]! / t[4]!).toBeCloseTo(Math.exp(1), 12);
  });

  it('repetition penalty divides positive and multiplies negative logits of seen ids', () => {
    const x = Float64Array.from([2, -2, 1]);
    applyRepetitionPenalty(x, [0, 1, 1], 2);
    expect(Array.from(x)).toEqual([1, -4, 1]);
  });

  it('the PRNG is deterministic and uniform-looking', () => {
    const a = new SeededRandom(42), b = new SeededRandom(42), c = new SeededRandom(43);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(xs.slice(0, 10)).not.toEqual(Array.from({ length: 10 }, () => c.next()));
    expect(xs.every((v) => v >= 0 && v < 1)).toBe(true);
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });
});

describe('generate', () => {
  it('same seed -> same tokens; top-k 1 equals greedy', async () => {
    const o = { maxNewTokens: 12, temperature: 1.0, topP: 0.95, seed: 7, stopOnEos: false };
    const a = await model.generate({ inputIds: PROMPT }, o);
    const b = await model.generate({ inputIds: PROMPT }, o);
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(a.tokenIds).toHaveLength(12);
    const others = await Promise.all([1, 2, 3].map((s) => model.generate({ inputIds: PROMPT }, { ...o, seed: s })));
    expect(others.some((r) => r.tokenIds.join() !== a.tokenIds.join())).toBe(true);
    const k1 = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 16, temperature: 1.3, topK: 1, seed: 1, stopOnEos: false });
    expect(k1.tokenIds).toEqual(GREEDY);
  });

  it('stop tokens, EOS and max tokens', async () => {
    const r = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 16, stopTokens: [121] });
    expect(r.tokenIds).toEqual([250, 205, 121]);
    expect(r.finishReason).toBe('stop_token');
    const z = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 0 });
    expect(z.tokenIds).toEqual([]);
    // make 82 the EOS: generation stops there with stopOnEos (default) and runs on without it
    const eos = model.eosIds;
    model.eosIds = [82];
    try {
      const e = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 16 });
      expect(e.tokenIds).toEqual([250, 205, 121, 82]);
      expect(e.finishReason).toBe('eos');
      const n = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 6, stopOnEos: false });
      expect(n.tokenIds).toEqual(GREEDY.slice(0, 6));
      expect(n.finishReason).toBe('length');
    } finally { model.eosIds = eos; }
  });

  it('repetition penalty changes greedy decoding away from repeats', async () => {
    const r = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 16, repetitionPenalty: 1e6, stopOnEos: false });
    // with a huge penalty no positive-logit token can be chosen twice; the golden greedy run repeats 80, 238, 82
    expect(r.tokenIds).not.toEqual(GREEDY);
  });

  it('stream yields the same tokens one by one; inputsEmbeds works', async () => {
    const got: number[] = [];
    for await (const c of model.stream({ inputIds: PROMPT }, { maxNewTokens: 16, stopOnEos: false })) {
      expect(c.index).toBe(got.length);
      got.push(c.tokenId);
    }
    expect(got).toEqual(GREEDY);
    const e = await model.generate({ inputsEmbeds: model.embed(PROMPT) }, { maxNewTokens: 16, stopOnEos: false });
    expect(e.tokenIds).toEqual(GREEDY);
  });

  it('AbortSignal cancels with E_ABORTED (before start and mid-stream)', async () => {
    const ac = new AbortController();
    ac.abort();
    const e1 = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 5, signal: ac.signal }).catch((e: unknown) => e);
    expect(isKestrelError(e1, 'E_ABORTED')).toBe(true);
    const ac2 = new AbortController();
    const seen: number[] = [];
    let err: unknown = null;
    try {
      for await (const c of model.stream({ inputIds: PROMPT }, { maxNewTokens: 16, stopOnEos: false, signal: ac2.signal })) {
        seen.push(c.tokenId);
        if (seen.length === 3) ac2.abort();
      }
    } catch (e) { err = e; }
    expect(isKestrelError(err, 'E_ABORTED')).toBe(true);
    expect(seen).toEqual(GREEDY.slice(0, 3));
    // a timer-driven abort lands between steps because generation yields to the event loop
    const ac3 = new AbortController();
    setTimeout(() => ac3.abort(), 5);
    const e3 = await model.generate({ inputIds: PROMPT }, { maxNewTokens: 100000, stopOnEos: false, signal: ac3.signal }).catch((e: unknown) => e);
    expect(isKestrelError(e3, 'E_ABORTED')).toBe(true);
  });

  it('a KvCache is per sequence and per model', async () => {
    const c = model.createCache();
    expect(() => model.forwardBatch([{ inputIds: [0, 1], cache: c }, { inputIds: [2], cache: c }])).toThrow(/own KvCache/);
    const other = await MoeLanguageModel.load(`${FIX}C`, { backend: 'portable' });
    expect(() => model.forward({ inputIds: [0], cache: other.createCache() })).toThrow(/another model/);
    other.dispose();
  });

  it('bad options are E_OPTIONS', async () => {
    for (const bad of [{ topP: 0 }, { temperature: -1 }, { maxNewTokens: 1.5 }, { stopStrings: ['x'] }, { bogus: 1 }]) {
      const e = await model.generate({ inputIds: PROMPT }, bad as never).catch((x: unknown) => x);
      expect(isKestrelError(e, 'E_OPTIONS'), JSON.stringify(bad)).toBe(true);
    }
    const e = await model.generate({ prompt: 'hi' }).catch((x: unknown) => x);
    expect(isKestrelError(e, 'E_OPTIONS')).toBe(true);
  });
});

describe('tokenizer.json', () => {
  it('text prompts, decoded text and stop strings', async () => {
    const dir = join(work, 'with-tokenizer');
    await cp(`${FIX}A`, dir, { recursive: true });
    // a word-level tokenizer over the 300 ids: <s>, </s>, then w2..w299
    const vocab: Record<string, number> = { '<s>': 0, '</s>': 1 };
    for (let i = 2; i < 300; i++) vocab[`w${i}`] = i;
    const special = (id: number, content: string): Record<string, unknown> => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    const tj = {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [special(0, '<s>'), special(1, '</s>')],
      normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
      model: { type: 'WordLevel', vocab, unk_token: 'w2' },
    };
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tj));
    const m = await MoeLanguageModel.load(dir, { backend: 'portable' });
    expect(m.tokenizer).not.toBeNull();
    const prompt = '<s> w17 w230 w45 w9 w12 w101';
    expect(m.tokenizer!.encode(prompt)).toEqual(PROMPT);
    const r = await m.generate({ prompt }, { maxNewTokens: 4, stopOnEos: false });
    expect(r.tokenIds).toEqual(GREEDY.slice(0, 4));
    expect(r.text).toBe('w250 w205 w121 w82');
    const s = await m.generate({ prompt }, { maxNewTokens: 16, stopOnEos: false, stopStrings: [' w121'] });
    expect(s.finishReason).toBe('stop_string');
    expect(s.tokenIds).toEqual([250, 205, 121]);
    expect(s.text).toBe('w250 w205');
    let streamed = '';
    for await (const c of m.stream({ prompt }, { maxNewTokens: 16, stopOnEos: false, stopStrings: [' w121'] })) streamed += c.text ?? '';
    expect(streamed).toBe('w250 w205');
    m.dispose();
  });
});

describe('top-p on a large vocabulary', () => {
  it('the partial sort gives the same result as sorting everything', () => {
    const r = new SeededRandom(3);
    const V = 50000;
    const logits = Float32Array.from({ length: V }, (_, i) => (i % 97 === 0 ? 30 : 0) + 8 * (r.next() - 0.5) - (i % 5 === 0 ? 60 : 0));
    for (const topP of [0.5, 0.9, 0.999]) {
      const fast = samplingProbs(logits, { temperature: 0.7, topK: 0, topP });
      // reference: the plain definition over every id (keep iff the mass ranked above it is < topP)
      const x = Array.from(logits, (v) => v / 0.7);
      const mx = Math.max(...x);
      const z = x.reduce((a, v) => a + Math.exp(v - mx), 0);
      const order = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const keep = new Array<boolean>(V).fill(true);
      let c = 0;
      for (let j = 0; j < V - 1; j++) { c += Math.exp(order[j]![0] - mx) / z; if (c <= 1 - topP) keep[order[j]![1]] = false; }
      expect(Array.from(fast, (v) => v > 0)).toEqual(keep);
    }
  });
});
