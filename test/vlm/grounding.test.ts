// Item 3 of issue 14: DeepSeek-VL2 visual grounding. Parser and coordinate cases are made by hand (the
// expected numbers are worked out in the comments); the pipeline runs on golden model A with the test
// tokenizer of test/fixtures/vlm-chat (random weights: format and flow are asserted, not accuracy).
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isKestrelError } from '@kestrel/core';
import { evaluateCoco } from '@kestrel/eval';
import { pipeline, parseGrounding, boxFromDeepseek, boxToDeepseek, benchGround, VisionLanguageModel, type DeepseekBox, type FrameGeometry, type GroundPipeline } from '@kestrel/pipelines';
import { commands as groundCommands } from '../../packages/cli/src/commands/ground.js';
import { commands as evalCocoCommands } from '../../packages/cli/src/commands/eval-coco.js';
import type { CommandContext, CommandSpec } from '../../packages/cli/src/command.js';
import { FIXTURES } from './golden.js';

const CHAT = fileURLToPath(new URL('../fixtures/vlm-chat/', import.meta.url));
const COCO_DIR = fileURLToPath(new URL('../fixtures/ground-coco/', import.meta.url));
const GT = join(COCO_DIR, 'annotations/instances_ground.json');
const A = join(FIXTURES, 'A');
const IMG0 = join(A, 'img0.png');
const tmp = mkdtempSync(join(tmpdir(), 'kestrel-ground-'));
const MODEL = join(tmp, 'A-grounding');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(async () => {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(MODEL);
  for (const f of ['config.json', 'processor_config.json', 'model.safetensors']) copyFileSync(join(A, f), join(MODEL, f));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(CHAT, f), join(MODEL, f));
});

function sink(): { stream: Writable; text: () => string } {
  let buf = '';
  return { stream: new Writable({ write(c, _e, cb) { buf += String(c); cb(); } }), text: () => buf };
}
async function runCmd(cmd: CommandSpec, values: CommandContext['values'], positionals: string[], json: boolean): Promise<{ out: string; err: string }> {
  const out = sink();
  const err = sink();
  await cmd.run({ values, positionals, json, debug: false, out: out.stream, err: err.stream });
  return { out: out.text(), err: err.text() };
}

describe('parseGrounding', () => {
  it("DeepSeek's README answer", () => {
    expect(parseGrounding('<|ref|>The giraffe at the back.<|/ref|><|det|>[[580, 270, 999, 900]]<|/det|>')).toEqual({
      boxes: [{ label: 'The giraffe at the back.', box: [580, 270, 999, 900] }], flags: [],
    });
  });

  it('several boxes per ref and several refs (grounded caption)', () => {
    const r = parseGrounding('<|ref|>a dog<|/ref|><|det|>[[1, 2, 30, 40], [50,60,70,80]]<|/det|> chases <|ref|>a cat<|/ref|><|det|>[[100, 100, 200, 200]]<|/det|>.');
    expect(r).toEqual({ flags: [], boxes: [
      { label: 'a dog', box: [1, 2, 30, 40] }, { label: 'a dog', box: [50, 60, 70, 80] }, { label: 'a cat', box: [100, 100, 200, 200] },
    ] });
  });

  const bad: Array<[string, string, string[]]> = [
    ['truncated inside the box list', '<|ref|>car<|/ref|><|det|>[[1, 2, 3', ['truncated']],
    ['truncated inside the label', '<|ref|>the red c', ['truncated', 'no_det']],
    ['three numbers', '<|ref|>car<|/ref|><|det|>[[1, 2, 3]]<|/det|>', ['malformed_box']],
    ['words', '<|ref|>car<|/ref|><|det|>somewhere left<|/det|>', ['malformed_box']],
    ['single brackets', '<|ref|>car<|/ref|><|det|>[1, 2, 3, 4]<|/det|>', ['malformed_box']],
    ['a coordinate above 999', '<|ref|>car<|/ref|><|det|>[[1, 2, 1000, 4]]<|/det|>', ['out_of_range']],
    ['a negative coordinate', '<|ref|>car<|/ref|><|det|>[[-1, 2, 10, 4]]<|/det|>', ['out_of_range']],
    ['x2 < x1', '<|ref|>car<|/ref|><|det|>[[10, 20, 5, 40]]<|/det|>', ['degenerate_box']],
    ['closing tag only', 'x<|/det|>', ['misplaced_tag', 'no_det']],
    ['no tags at all', 'I cannot see a car.', ['no_det']],
    ['empty answer', '', ['no_det']],
  ];
  for (const [what, text, flags] of bad) {
    it(`malformed or truncated (${what}): no box and a flag`, () => {
      expect(parseGrounding(text)).toEqual({ boxes: [], flags });
    });
  }

  it('keeps the good boxes of a partly malformed list and flags the rest; a det without ref is unlabelled', () => {
    expect(parseGrounding('<|ref|>car<|/ref|><|det|>[[1, 2, 3, 4], [5, x, 7, 8]]<|/det|>')).toEqual({ boxes: [{ label: 'car', box: [1, 2, 3, 4] }], flags: ['malformed_box'] });
    expect(parseGrounding('<|det|>[[1, 2, 3, 4]]<|/det|>')).toEqual({ boxes: [{ label: null, box: [1, 2, 3, 4] }], flags: ['unlabelled'] });
  });

  it('is total: random splices of answer fragments never throw', () => {
    const parts = ['<|ref|>', '<|/ref|>', '<|det|>', '<|/det|>', '[[', ']]', '[', ']', ',', ' ', '12', '999', '-3', '1e3', 'car', '\u0000', '💥', '<|grounding|>', '<|'];
    let seed = 7;
    const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
    for (let i = 0; i < 3000; i++) {
      let s = '';
      for (let k = rnd(12); k > 0; k--) s += parts[rnd(parts.length)];
      const r = parseGrounding(s);
      for (const b of r.boxes) expect(b.box.every((v) => v >= 0 && v <= 999) && b.box[2] > b.box[0] && b.box[3] > b.box[1]).toBe(true);
    }
    expect(parseGrounding(undefined as unknown as string).flags).toEqual(['no_det']);
  });
});

describe("DeepSeek's 0-999 coordinates <-> COCO pixels", () => {
  const close = (a: number[], b: number[]): void => { a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 9)); };

  it("'image' frame, 640 x 480: 333/999 and 666/999 of each side", () => {
    // x = 333/999*640 = 213.333..., 666/999*640 = 426.666...; y = 160, 320
    close(boxFromDeepseek([333, 333, 666, 666], { width: 640, height: 480 }), [640 / 3, 160, 640 / 3, 160]);
    close(boxFromDeepseek([0, 0, 999, 999], { width: 640, height: 480 }), [0, 0, 640, 480]);
  });

  it("'padded' frame, landscape 640 x 480 in a 384 letterbox: content 384 x 288 at y offset 48", () => {
    // canvas u = 333/999*384 = 128 -> x = 128*640/384 = 213.33, y = (128-48)*480/288 = 133.33
    // u = 256 -> x = 426.67, y = (256-48)*480/288 = 346.67
    close(boxFromDeepseek([333, 333, 666, 666], { width: 640, height: 480, tile: 384 }, 'padded'), [640 / 3, 400 / 3, 640 / 3, 640 / 3]);
    // the padding band maps outside the image and is clipped: 0..999 covers the whole image
    close(boxFromDeepseek([0, 0, 999, 999], { width: 640, height: 480, tile: 384 }, 'padded'), [0, 0, 640, 480]);
  });

  it("'padded' frame, portrait 480 x 640: content 288 x 384 at x offset 48", () => {
    close(boxFromDeepseek([333, 333, 666, 666], { width: 480, height: 640, tile: 384 }, 'padded'), [400 / 3, 640 / 3, 640 / 3, 640 / 3]);
  });

  it("'padded' frame with Pillow's half-to-even offset: 150 x 90 in 112 -> content 112 x 67 at y = round(22.5) = 22", () => {
    // u = 999/999*112 = 112 -> y = (112-22)*90/67 = 120.9 (clipped to 90); u = 500/999*112 -> y = (56.056-22)*90/67
    const [, y, , h] = boxFromDeepseek([0, 500, 999, 999], { width: 150, height: 90, tile: 112 }, 'padded');
    expect(y).toBeCloseTo((500 / 999 * 112 - 22) * 90 / 67, 9);
    expect(y! + h!).toBe(90);
  });

  it('round trip: every integer box inside the image survives 0-999 -> pixels -> 0-999 exactly', () => {
    const geos: Array<[FrameGeometry, 'image' | 'padded']> = [
      [{ width: 640, height: 480 }, 'image'], [{ width: 72, height: 120 }, 'image'],
      [{ width: 640, height: 480, tile: 384 }, 'padded'], [{ width: 480, height: 640, tile: 384 }, 'padded'],
      [{ width: 150, height: 90, tile: 112 }, 'padded'], [{ width: 300, height: 300, tile: 384 }, 'padded'],
    ];
    for (const [g, frame] of geos) {
      for (let c = 250; c < 550; c += 7) { // boxes up to c + 200 < 750 stay inside the image content in every geometry here
        const b: DeepseekBox = [c, c - 3, c + 120, c + 200];
        expect(boxToDeepseek(boxFromDeepseek(b, g, frame), g, frame)).toEqual(b);
      }
    }
  });
});

describe('ground pipeline on golden model A (test tokenizer with the grounding tokens)', () => {
  let vlm: VisionLanguageModel;
  let ground: GroundPipeline;
  beforeAll(async () => {
    vlm = await VisionLanguageModel.load(MODEL, { backend: 'portable' });
    ground = await pipeline('ground', { model: vlm, maxNewTokens: 12 });
  });
  afterAll(() => vlm?.dispose());

  it("prompts as DeepSeek does and returns boxes, flags, the raw answer and usage", async () => {
    const r = await ground(IMG0, 'the red car');
    // BOS, <|User|>, ": ", 57 image tokens, "\n", <|ref|>, "the red car", <|/ref|>, ".\n\n", <|Assistant|>, ":"
    expect(r.usage.promptTokens).toBe(1 + 1 + 2 + 57 + 1 + 1 + 11 + 1 + 3 + 1 + 1);
    expect(r.usage.imageTokens).toBe(57);
    expect(Array.isArray(r.detections)).toBe(true);
    expect(typeof r.text).toBe('string');
    for (const f of parseGrounding(r.text).flags) expect(r.flags).toContain(f);
    for (const d of r.detections) expect(d.bbox[2] > 0 && d.bbox[3] > 0 && d.bbox[0] + d.bbox[2] <= 150 && d.bbox[1] + d.bbox[3] <= 90).toBe(true);
  });

  it('a canned DeepSeek answer flows through detect into COCO results that evaluateCoco scores AP 1', async () => {
    // the model's token stream replaced by DeepSeek-format answers: a box on the GT for car/img1 and gear/img2
    const tok = vlm.tokenizer!;
    const original = vlm.stream.bind(vlm);
    let query = '';
    vlm.stream = async function* (input, options) {
      const text = tok.decode(Array.from(input.inputIds), false);
      query = /<\|ref\|>(.*?)<\|\/ref\|>/.exec(text)?.[1] ?? '';
      const answer = query === 'car' || query === 'gear' ? `<|ref|>${query}<|/ref|><|det|>[[333, 333, 666, 666]]<|/det|>` : 'none';
      let index = 0;
      for (const tokenId of tok.encode(answer)) yield { tokenId, index: index++, text: '' };
      void options;
    } as typeof vlm.stream;
    try {
      const car = await ground.detect(join(COCO_DIR, 'images/1.png'), [{ id: 3, name: 'car' }, { id: 7, name: 'tree' }]);
      expect(car.detections).toEqual([{ bbox: [50, 30, 50, 30], score: 1, categoryId: 3, label: 'car' }]);
      expect(car.flags).toEqual(['no_det']);
      const gear = await ground.detect(join(COCO_DIR, 'images/2.png'), [{ id: 7, name: 'gear' }]);
      const results = [
        ...car.detections.map((d) => ({ image_id: 1, category_id: d.categoryId, bbox: d.bbox, score: d.score })),
        ...gear.detections.map((d) => ({ image_id: 2, category_id: d.categoryId, bbox: d.bbox, score: d.score })),
      ];
      const s = evaluateCoco({ gt: JSON.parse(readFileSync(GT, 'utf8')), results, iouType: 'bbox' });
      expect(s.stats[0]).toBeCloseTo(1, 12);
    } finally {
      vlm.stream = original;
    }
  });

  it('detect runs the vision tower once per image and answers as single queries do', async () => {
    const encode = vlm.vision.encode.bind(vlm.vision);
    let calls = 0;
    vlm.vision.encode = ((...a: Parameters<typeof encode>) => { calls++; return encode(...a); }) as typeof encode;
    try {
      const texts: string[] = [];
      await ground.detect(IMG0, ['car', 'gear', 'tree']);
      expect(calls).toBe(1);
      for (const q of ['car', 'gear']) texts.push((await ground(IMG0, q)).text);
      expect(calls).toBe(3);
      // same greedy answer with and without the shared embeddings
      let a = '';
      let b = '';
      const reuse = await ground.detect(IMG0, ['car'], { onText: (t) => { a += t; } });
      const single = await ground(IMG0, 'car', { onText: (t) => { b += t; } });
      expect(a).toBe(b);
      expect(a.length).toBeGreaterThan(0);
      expect(reuse.detections).toEqual(single.detections.map((d) => ({ bbox: d.bbox, score: d.score, categoryId: 1, label: 'car' })));
      expect(texts[0]).toBe(single.text);
    } finally {
      vlm.vision.encode = encode;
    }
  });

  it('bad queries are E_OPTIONS; a tokenizer without the grounding tokens is E_CHECKPOINT_FORMAT naming them', async () => {
    await expect(ground(IMG0, '  ').catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
    await expect(ground(IMG0, 'the <|ref|>car').catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
    await expect(ground.detect(IMG0, []).catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
    const err = await pipeline('ground', { model: A, backend: 'portable' }).catch((e: unknown) => e);
    expect(isKestrelError(err, 'E_CHECKPOINT_FORMAT'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/<\|ref\|>/);
  });
});

describe('open-vocabulary detect -> results JSON -> kestrel eval coco (golden model A)', () => {
  it('benchGround writes COCO results that `kestrel eval coco` scores', async () => {
    const res = join(tmp, 'out', 'results.json');
    const r = await benchGround({ model: MODEL, data: COCO_DIR, results: res, backend: 'portable', maxNewTokens: 8 });
    expect(r).toMatchObject({ images: 2, categories: 2, queries: 4, results: res });
    expect(r.stats).toHaveLength(12);
    const written = JSON.parse(readFileSync(res, 'utf8')) as Array<Record<string, unknown>>;
    expect(written).toHaveLength(r.detections);
    for (const e of written) expect(Object.keys(e).sort()).toEqual(['bbox', 'category_id', 'image_id', 'score']);
    const ev = await runCmd(evalCocoCommands[0]!, { gt: GT, results: res, 'iou-type': 'bbox' }, [], true);
    expect((JSON.parse(ev.out) as { stats: number[] }).stats).toHaveLength(12);
  });

  it('kestrel ground: one query prints boxes (or flags), --json the result, --data the COCO summary', async () => {
    const one = await runCmd(groundCommands[0]!, { model: MODEL, image: IMG0, 'max-new-tokens': '6', backend: 'portable' }, ['the', 'red', 'car'], true);
    expect(Object.keys(JSON.parse(one.out) as object).sort()).toEqual(['detections', 'flags', 'text', 'usage']);
    const human = await runCmd(groundCommands[0]!, { model: MODEL, image: IMG0, 'max-new-tokens': '6', backend: 'portable' }, ['the', 'red', 'car'], false);
    expect(human.err).toMatch(/box\(es\)/);
    const data = await runCmd(groundCommands[0]!, { model: MODEL, data: COCO_DIR, limit: '1', categories: 'car', 'max-new-tokens': '4', backend: 'portable' }, [], false);
    expect(data.out).toMatch(/Average Precision/);
    await expect(runCmd(groundCommands[0]!, { model: MODEL }, ['car'], false).catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
  });
});
