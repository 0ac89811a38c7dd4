// ask / caption pipelines, chat(), and the `kestrel ask` / `kestrel caption` commands on golden model A
// with the test tokenizer (test/fixtures/vlm/make-tokenizer.mjs).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { mkdtempSync, copyFileSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { isKestrelError } from '@kestrel/core';
import { pipeline, VisionLanguageModel, formatConversation, type AskPipeline, type CaptionPipeline } from '@kestrel/pipelines';
import { commands as askCommands } from '../../packages/cli/src/commands/ask.js';
import { commands as captionCommands, imageIdFor } from '../../packages/cli/src/commands/caption.js';
import { commands as evalCaptionCommands } from '../../packages/cli/src/commands/eval-captions.js';
import type { CommandContext, CommandSpec } from '../../packages/cli/src/command.js';
import { FIXTURES } from './golden.js';

const DIR = join(FIXTURES, 'A');
const IMG0 = join(DIR, 'img0.png');
const IMG1 = join(DIR, 'img1.png');

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

describe('VLM pipelines (model A, test tokenizer)', () => {
  let vlm: VisionLanguageModel;
  let ask: AskPipeline;
  let caption: CaptionPipeline;
  beforeAll(async () => {
    vlm = await VisionLanguageModel.load(DIR, { backend: 'portable' });
    ask = await pipeline('ask', { model: vlm, maxNewTokens: 6 });
    caption = await pipeline('caption', { model: vlm, maxNewTokens: 5 });
  });
  afterAll(() => vlm?.dispose());

  it('formats the DeepSeek-VL2 conversation', () => {
    const { prompt, images } = formatConversation([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'image', image: 'a.png' }, { type: 'text', text: 'What is it?' }] },
      { role: 'assistant', content: 'A gear.' },
      { role: 'user', content: 'Any defect?' },
    ]);
    expect(prompt).toBe('Be brief.\n\n<|User|>: <image>\nWhat is it?\n\n<|Assistant|>: A gear.<｜end▁of▁sentence｜><|User|>: Any defect?\n\n<|Assistant|>:');
    expect(images).toEqual(['a.png']);
  });

  it('ask = generate on the tokenized prompt, decoded; usage counts tokens', async () => {
    const r = await ask(IMG0, 'What is in the image?');
    const tok = vlm.tokenizer!;
    const text = '<|User|>: <image>\nWhat is in the image?\n\n<|Assistant|>:';
    const pre = await vlm.processor.preprocess([IMG0]);
    const { inputIds } = vlm.processor.tokenizeWithImages(text, pre.numImageTokens, (t) => tok.encode(t));
    expect(inputIds[0]).toBe(0); // bos
    expect(Array.from(inputIds.subarray(1, 3))).toEqual([3, tok.encode(':')[0]]); // <|User|> is one special token
    const { tokenIds } = await vlm.generate({ inputIds, images: [IMG0] }, { maxNewTokens: 6 });
    expect(r.text).toBe(tok.decode(tokenIds));
    expect(r.usage.imageTokens).toBe(57); // 150x90 on A: 2x1 tiles (golden case_img0)
    expect(r.usage.promptTokens).toBe(inputIds.length);
    expect(r.usage.completionTokens).toBe(tokenIds.length);
    expect(r.usage.ms).toBeGreaterThan(0);
  });

  it('ask.stream yields pieces that add up to the answer; several images share one prompt', async () => {
    const pieces: string[] = [];
    const gen = ask.stream([IMG0, IMG1], 'Compare them.');
    let n = await gen.next();
    while (!n.done) { pieces.push(n.value); n = await gen.next(); }
    expect(pieces.join('')).toBe(n.value.text);
    expect(n.value.usage.imageTokens).toBe(57 + 61);
    const again = await ask([IMG0, IMG1], 'Compare them.');
    expect(again.text).toBe(n.value.text);
  });

  it('caption: one result per image; chat() with OpenAI-style parts matches', async () => {
    const [a, b] = await caption([IMG0, IMG1]);
    const single = await caption(IMG0);
    expect(single.caption).toBe(a!.caption);
    expect(typeof b!.caption).toBe('string');
    const r = await vlm.chat([{ role: 'user', content: [{ type: 'image', image: IMG0 }, { type: 'text', text: 'Describe this image in one sentence.' }] }], { maxNewTokens: 5 });
    expect(r.text.trim()).toBe(a!.caption);
    expect(r.message).toEqual({ role: 'assistant', content: r.text });
    const viaAsk = await ask.chat([{ role: 'user', content: [{ type: 'image', image: IMG0 }, { type: 'text', text: 'Describe this image in one sentence.' }] }], { maxNewTokens: 5 });
    expect(viaAsk.text).toBe(r.text);
  });

  it('bad input: E_OPTIONS for empty question / bad roles, E_IMAGE_TOKENS for a stray <image>', async () => {
    await expect(ask(IMG0, '  ').catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
    await expect(vlm.chat([{ role: 'assistant', content: 'hi' }]).catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
    await expect(ask(IMG0, 'what is <image> here').catch((e: unknown) => isKestrelError(e, 'E_IMAGE_TOKENS'))).resolves.toBe(true);
    await expect(ask('/nonexistent.png', 'what?').catch((e: unknown) => isKestrelError(e, 'E_IO'))).resolves.toBe(true);
  });
});

describe('kestrel ask / caption', () => {
  it('ask streams the answer; --json gives text and usage', async () => {
    const values = { model: DIR, image: [IMG0], 'max-new-tokens': '4', backend: 'portable' };
    const j = await runCmd(askCommands[0]!, values, ['What', 'is', 'this?'], true);
    const parsed = JSON.parse(j.out) as { text: string; usage: { imageTokens: number; completionTokens: number } };
    expect(parsed.usage.imageTokens).toBe(57);
    const h = await runCmd(askCommands[0]!, values, ['What', 'is', 'this?'], false);
    expect(h.out).toBe(parsed.text + '\n');
    expect(h.err).toMatch(/57 image/);
    await expect(runCmd(askCommands[0]!, { model: DIR }, ['q'], false).catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
    await expect(runCmd(askCommands[0]!, { ...values, temperature: 'hot' }, ['q'], false).catch((e: unknown) => isKestrelError(e, 'E_OPTIONS'))).resolves.toBe(true);
  });

  it('caption --out writes [{image_id, caption}] that `kestrel eval captions` scores', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'kestrel-caption-'));
    copyFileSync(IMG0, join(tmp, '000000000042.png'));
    copyFileSync(IMG1, join(tmp, '7.png'));
    const out = join(tmp, 'res.json');
    await runCmd(captionCommands[0]!, { model: DIR, out, 'max-new-tokens': '4', backend: 'portable' }, [join(tmp, '000000000042.png'), join(tmp, '7.png')], false);
    const res = JSON.parse(readFileSync(out, 'utf8')) as { image_id: number; caption: string }[];
    expect(res.map((r) => r.image_id)).toEqual([42, 7]);
    for (const r of res) expect(typeof r.caption).toBe('string');
    const gt = join(tmp, 'gt.json');
    writeFileSync(gt, JSON.stringify({ images: [{ id: 42 }, { id: 7 }], annotations: [{ image_id: 42, caption: 'a gradient with shapes' }, { image_id: 7, caption: 'stripes and a checkerboard' }] }));
    const ev = await runCmd(evalCaptionCommands[0]!, { gt, results: out }, [], true);
    expect((JSON.parse(ev.out) as { n_images: number }).n_images).toBe(2);
    expect(imageIdFor('/x/photo.v2.jpg')).toBe('photo.v2');
  });
});

describe('VisionLanguageModel.dispose', () => {
  it('releases the ViT and projector weights too, not only the language model', async () => {
    const m = await VisionLanguageModel.load(DIR, { backend: 'portable' });
    m.dispose();
    expect([m.vision.isDisposed, m.projector.isDisposed, m.language.isDisposed]).toEqual([true, true, true]);
    await expect(m.prepareInputs({ inputIds: [0] })).rejects.toThrow(/disposed/);
  });
});
