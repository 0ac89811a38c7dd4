// Item 2 of issue 14: tokens and conversation exactly as DeepSeek-VL2's processor builds them
// (deepseek-ai/DeepSeek-VL2 processing_deepseek_vl_v2.py format_messages_v2 + conversation.py "deepseek").
// The tokenizer (test/fixtures/vlm-chat) maps every text byte b to id 5 + b, so the expected ids below
// are spelled out by hand from DeepSeek's code: B(text) is that byte mapping, nothing of Kestrel's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { solidImage } from '@kestrel/core';
import { DeepseekVLV2Processor, VlmTokenizer, tokenizeConversation, type ChatMessage } from '@kestrel/pipelines';
import { FIXTURES } from './golden.js';

const CHAT = fileURLToPath(new URL('../fixtures/vlm-chat/', import.meta.url));
const PUBLISHED = fileURLToPath(new URL('../fixtures/published-configs/', import.meta.url));
const A = join(FIXTURES, 'A');
const IMG0 = join(A, 'img0.png'); // 150 x 90: 2 x 1 tiles on model A, 57 image tokens (golden case_img0)
const IMG1 = join(A, 'img1.png');
const B = (s: string): number[] => [...Buffer.from(s, 'utf8')].map((b) => 5 + b);
const [BOS, EOS, USER, ASSISTANT, REF, REF_END, GROUNDING, IMG] = [0, 1, 3, 4, 261, 262, 265, 299];
const img = (n: number): number[] => new Array<number>(n).fill(IMG);

async function setup(): Promise<{ proc: DeepseekVLV2Processor; run: (m: ChatMessage[], counts: number[]) => number[] }> {
  const tok = (await VlmTokenizer.load(CHAT))!;
  const proc = new DeepseekVLV2Processor(JSON.parse(readFileSync(join(A, 'processor_config.json'), 'utf8')));
  const encode = (t: string): number[] => tok.encode(t);
  const run = (m: ChatMessage[], counts: number[]): number[] => Array.from(tokenizeConversation(m, counts, {
    imageToken: '<image>', bosId: 0, eosId: 1, encode, tokenizeWithImages: (t, n) => proc.tokenizeWithImages(t, n, encode, { bos: false }),
  }).inputIds);
  return { proc, run };
}

describe('conversation tokens as DeepSeek-VL2 builds them', () => {
  it("README grounding example: '<image>\\n<|ref|>The giraffe at the back.<|/ref|>.'", async () => {
    const { proc, run } = await setup();
    const pre = await proc.preprocess([IMG0]);
    expect(pre.numImageTokens).toEqual([57]);
    const ids = run([{ role: 'user', content: '<image>\n<|ref|>The giraffe at the back.<|/ref|>.', images: [IMG0] }], pre.numImageTokens);
    expect(ids).toEqual([BOS, USER, ...B(': '), ...img(57), ...B('\n'), REF, ...B('The giraffe at the back.'), REF_END, ...B('.\n\n'), ASSISTANT, ...B(':')]);
  });

  it("DeepSeek's conversation lists work verbatim: <|User|> / <|Assistant|> roles and the closing empty assistant turn", async () => {
    const { run } = await setup();
    const deepseek = [
      { role: '<|User|>', content: '<image>\n<|ref|>The giraffe at the back.<|/ref|>.', images: [IMG0] },
      { role: '<|Assistant|>', content: '' },
    ] as ChatMessage[];
    const ours: ChatMessage[] = [{ role: 'user', content: '<image>\n<|ref|>The giraffe at the back.<|/ref|>.', images: [IMG0] }];
    expect(run(deepseek, [57])).toEqual(run(ours, [57]));
    expect(run([{ role: 'User', content: 'Hi' }, { role: 'Assistant', content: '' }], [])).toEqual([BOS, USER, ...B(': Hi\n\n'), ASSISTANT, ...B(':')]);
  });

  it('README multi-image example: three images, no cropping (one tile each), placeholders in place', async () => {
    const { proc, run } = await setup();
    const pre = await proc.preprocess([IMG0, IMG1, IMG0]);
    // 7x7 patches -> 4x4 tokens per tile: global 4*(4+1) + separator 1 + local 4*(4+1) = 41
    expect(pre.numImageTokens).toEqual([41, 41, 41]);
    expect(pre.numTiles).toEqual([2, 2, 2]);
    const q = 'This is image_1: <image>\nThis is image_2: <image>\nThis is image_3: <image>\n Can you tell me what are in the images?';
    const ids = run([{ role: 'user', content: q, images: [IMG0, IMG1, IMG0] }], pre.numImageTokens);
    expect(ids).toEqual([
      BOS, USER, ...B(': This is image_1: '), ...img(41), ...B('\nThis is image_2: '), ...img(41), ...B('\nThis is image_3: '), ...img(41),
      ...B('\n Can you tell me what are in the images?\n\n'), ASSISTANT, ...B(':'),
    ]);
  });

  it('inference.py example: two images (still cropped: at most 2) then <|grounding|>', async () => {
    const { proc, run } = await setup();
    const pre = await proc.preprocess([IMG0, IMG1]);
    expect(pre.numImageTokens).toEqual([57, 61]); // golden case_img0 / case_img1
    const q = '<image>\n<image>\n<|grounding|>In the first image, an object within the red rectangle is marked. Locate the object of the same category in the second image.';
    const ids = run([{ role: 'user', content: q, images: [IMG0, IMG1] }], pre.numImageTokens);
    expect(ids).toEqual([
      BOS, USER, ...B(': '), ...img(57), ...B('\n'), ...img(61), ...B('\n'), GROUNDING,
      ...B('In the first image, an object within the red rectangle is marked. Locate the object of the same category in the second image.\n\n'), ASSISTANT, ...B(':'),
    ]);
  });

  it('web_demo.py example with UTF-8 text: "找到<|ref|>淡定姐<|/ref|>"', async () => {
    const { run } = await setup();
    const ids = run([{ role: 'user', content: '<image>\n找到<|ref|>淡定姐<|/ref|>', images: [IMG0] }], [57]);
    expect(ids).toEqual([BOS, USER, ...B(': '), ...img(57), ...B('\n找到'), REF, ...B('淡定姐'), REF_END, ...B('\n\n'), ASSISTANT, ...B(':')]);
  });

  it('system prompt and multi-turn: system text with no separator, answers without a leading space and closed by EOS', async () => {
    const { run } = await setup();
    const ids = run([
      { role: 'system', content: ' Be brief. ' },
      { role: 'user', content: [{ type: 'image', image: IMG0 }, { type: 'text', text: 'What is it?' }] },
      { role: 'assistant', content: ' A gear. ' },
      { role: 'user', content: [{ type: 'text', text: 'And this?' }, { type: 'image', image: IMG1 }] },
    ], [57, 61]);
    expect(ids).toEqual([
      BOS, ...B('Be brief.'),
      USER, ...B(': '), ...img(57), ...B('\nWhat is it?\n\n'), ASSISTANT, ...B(':'),
      ...B('A gear.'), EOS,
      USER, ...B(': And this?\n'), ...img(61), ...B('\n\n'), ASSISTANT, ...B(':'),
    ]);
  });

  it('the image-token count per tile layout of the published 384-px processor (14 x 14 tokens per tile)', async () => {
    const proc = new DeepseekVLV2Processor(JSON.parse(readFileSync(join(PUBLISHED, 'deepseek-vl2-tiny/processor_config.json'), 'utf8')));
    // h*(w+1) + 1 + (th*h)*(tw*w+1) with h = w = ceil((384 // 14) / 2) = 14
    expect(proc.countImageTokens(1, 1)).toBe(14 * 15 + 1 + 14 * 15);
    expect(proc.countImageTokens(2, 1)).toBe(210 + 1 + 14 * 29);
    expect(proc.countImageTokens(1, 2)).toBe(210 + 1 + 28 * 15);
    expect(proc.countImageTokens(3, 3)).toBe(210 + 1 + 42 * 43);
    // a 640 x 480 photo: best resolution 768 x 768 -> 2 x 2 local tiles + the global view = 5 tiles, 1,023 tokens
    const pre = await proc.preprocess([solidImage(640, 480, 3, [10, 20, 30])]);
    expect(pre.imagesSpatialCrop).toEqual([[2, 2]]);
    expect(pre.numTiles).toEqual([5]);
    expect(pre.numImageTokens).toEqual([1023]);
  });

  it("special tokens a tokenizer.json lacks get the next ids in the processor's order (pad, <image>, grounding, roles)", async () => {
    // golden A's tokenizer has pad, <image>, <|User|>, <|Assistant|> but none of the grounding tokens
    const tok = (await VlmTokenizer.load(A, ['<image>', '<|ref|>', '<|/ref|>', '<|det|>', '<|/det|>', '<|grounding|>', '<|User|>', '<|Assistant|>']))!;
    expect(['<image>', '<|ref|>', '<|/ref|>', '<|det|>', '<|/det|>', '<|grounding|>', '<|User|>', '<|Assistant|>'].map((t) => tok.tokenToId(t)))
      .toEqual([299, 300, 301, 302, 303, 304, 3, 4]);
    expect(tok.encode('<|ref|>x<|/ref|>')).toEqual([300, ...tok.encode('x'), 301]);
  });
});

describe('published tokenizer_config.json', () => {
  it('AddedToken objects and a null pad token load; the processor then adds <｜▁pad▁｜> as DeepSeek does', async () => {
    const { mkdtempSync, copyFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { processorSpecialTokens } = await import('@kestrel/pipelines');
    const dir = mkdtempSync(join(tmpdir(), 'kestrel-tokcfg-'));
    try {
      copyFileSync(join(CHAT, 'tokenizer.json'), join(dir, 'tokenizer.json'));
      copyFileSync(join(PUBLISHED, 'deepseek-vl2-tiny/tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
      const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as { pad_token: unknown };
      const add = processorSpecialTokens({ padToken: '<｜▁pad▁｜>', imageToken: '<image>', tokenizerHasPad: cfg.pad_token !== null });
      expect(add).toEqual(['<｜▁pad▁｜>', '<image>', '<|ref|>', '<|/ref|>', '<|det|>', '<|/det|>', '<|grounding|>', '<|User|>', '<|Assistant|>']);
      const tok = (await VlmTokenizer.load(dir, add))!;
      expect(add.map((t) => tok.tokenToId(t))).toEqual([2, 299, 261, 262, 263, 264, 265, 3, 4]);
      expect(tok.decode([USER, ...B(': hi')], false)).toBe('<|User|>: hi');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
