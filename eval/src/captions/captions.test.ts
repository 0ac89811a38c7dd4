import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isKestrelError } from '@kestrel/core';
import { evaluateCaptions, ptbTokenize, scoreCaptions, lcsLength } from './index.js';

interface Expected {
  Bleu_1: number; Bleu_2: number; Bleu_3: number; Bleu_4: number; ROUGE_L: number; CIDEr: number;
  bleu_corpus_totals: { testlen: number; reflen: number };
  per_image: Record<string, Record<string, number>>;
}
interface Case {
  name: string;
  image_ids: number[];
  gts_raw: Record<string, string[]>;
  res_raw: Record<string, string[]>;
  gts: Record<string, string[]>;
  res: Record<string, string[]>;
  expected: Expected;
}
const fixture = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/captions/caption_cases.json', import.meta.url)), 'utf8')) as { cases: Case[] };
const METRICS = ['Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'ROUGE_L', 'CIDEr'] as const;
const TOL = 1e-9;

function expectClose(actual: number, expected: number, what: string): void {
  if (!(Math.abs(actual - expected) <= TOL)) throw new Error(`${what}: got ${actual}, expected ${expected} (|diff| ${Math.abs(actual - expected)})`);
}

describe('caption metrics vs pycocoevalcap golden cases', () => {
  for (const c of fixture.cases) {
    it(`${c.name}: tokenized inputs, every number within 1e-9`, () => {
      const r = scoreCaptions(c.image_ids.map((id) => ({ imageId: id, refs: c.gts[String(id)]!, hyp: c.res[String(id)]![0]! })));
      for (const m of METRICS) expectClose(r[m], c.expected[m], `${c.name} ${m}`);
      expect(r.bleu_corpus_totals).toEqual(c.expected.bleu_corpus_totals);
      for (const id of c.image_ids) {
        for (const m of METRICS) expectClose(r.per_image[String(id)]![m], c.expected.per_image[String(id)]![m]!, `${c.name} image ${id} ${m}`);
      }
    });

    it(`${c.name}: tokenizer reproduces gts/res from the raw captions`, () => {
      for (const id of c.image_ids) {
        expect(c.gts_raw[String(id)]!.map(ptbTokenize)).toEqual(c.gts[String(id)]);
        expect(c.res_raw[String(id)]!.map(ptbTokenize)).toEqual(c.res[String(id)]);
      }
    });

    it(`${c.name}: end to end from raw COCO-format files`, () => {
      const images = c.image_ids.map((id) => ({ id }));
      const annotations = c.image_ids.flatMap((id) => c.gts_raw[String(id)]!.map((caption) => ({ image_id: id, caption })));
      const results = c.image_ids.map((id) => ({ image_id: id, caption: c.res_raw[String(id)]![0]! }));
      const r = evaluateCaptions({ images, annotations }, results);
      for (const m of METRICS) expectClose(r[m], c.expected[m], `${c.name} ${m}`);
      for (const id of c.image_ids) for (const m of METRICS) expectClose(r.per_image[String(id)]![m], c.expected.per_image[String(id)]![m]!, `${c.name} ${id} ${m}`);
      expect(r.gt_images_without_result).toBe(0);
    });
  }
});

describe('PTB-style tokenizer', () => {
  it('follows the documented rules', () => {
    expect(ptbTokenize('A dog\'s ball, on the Grass.')).toBe("a dog 's ball on the grass");
    expect(ptbTokenize('A black-and-white cat .')).toBe('a black-and-white cat');
    expect(ptbTokenize('.')).toBe('');
    expect(ptbTokenize('  Two  men\nwalking!  ')).toBe('two men walking');
  });
  it('handles PTB conventions beyond the golden alphabet', () => {
    expect(ptbTokenize("Don't stop; it's \"great\" (really)...")).toBe("do n't stop it 's great really");
    expect(ptbTokenize("The dogs' bowls -- and we're done: cannot")).toBe("the dogs bowls and we 're done can not");
    expect(ptbTokenize('A 3.5 inch, 1,000 dollar phone?')).toBe('a 3.5 inch 1,000 dollar phone');
    expect(ptbTokenize("...and 'then' [sic] 50% off $5")).toBe('and then -lsb- sic -rsb- 50 % off $ 5');
  });
});

describe('edge cases', () => {
  it('LCS', () => {
    expect(lcsLength('a b c d'.split(' '), 'a c d e'.split(' '))).toBe(3);
    expect(lcsLength([], ['a'])).toBe(0);
  });
  it('an empty candidate scores 0 everywhere', () => {
    const r = scoreCaptions([
      { imageId: 1, refs: ['a dog runs', 'a dog'], hyp: '' },
      { imageId: 2, refs: ['a cat sits'], hyp: 'a cat sits' },
    ]);
    expect(r.per_image['1']!.ROUGE_L).toBe(0);
    expect(r.per_image['1']!.CIDEr).toBe(0);
    expect(r.per_image['1']!.Bleu_1).toBeLessThan(1e-6);
  });
});

describe('bad input → E_COCO_FORMAT with the path', () => {
  const gt = { images: [{ id: 1 }, { id: 2 }], annotations: [{ image_id: 1, caption: 'a dog' }, { image_id: 2, caption: 'a cat' }] };
  const cases: [string, unknown, unknown, RegExp][] = [
    ['missing images', { annotations: [] }, [], /images/],
    ['caption not a string', { images: [{ id: 1 }], annotations: [{ image_id: 1, caption: 5 }] }, [], /annotations\[0\]\.caption/],
    ['results not an array', gt, { image_id: 1 }, /results/],
    ['result without caption', gt, [{ image_id: 1 }], /\[0\]\.caption/],
    ['unknown image id', gt, [{ image_id: 9, caption: 'x' }], /\[0\]\.image_id/],
    ['duplicate result', gt, [{ image_id: 1, caption: 'x' }, { image_id: 1, caption: 'y' }], /\[1\]\.image_id/],
    ['annotation of unknown image', { images: [{ id: 1 }], annotations: [{ image_id: 3, caption: 'x' }] }, [], /annotations\[0\]\.image_id/],
    ['no results', gt, [], /no result/],
  ];
  for (const [name, g, r, re] of cases) {
    it(name, () => {
      let err: unknown;
      try { evaluateCaptions(g, r); } catch (e) { err = e; }
      expect(isKestrelError(err, 'E_COCO_FORMAT')).toBe(true);
      expect((err as Error).message).toMatch(re);
    });
  }
  it('images: all rejects a GT image without a result; default skips and counts it', () => {
    expect(() => evaluateCaptions(gt, [{ image_id: 1, caption: 'a dog' }], { images: 'all' })).toThrow(/no caption for ground-truth image 2/);
    expect(evaluateCaptions(gt, [{ image_id: 1, caption: 'a dog' }]).gt_images_without_result).toBe(1);
  });
});
