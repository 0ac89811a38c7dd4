// Bad input through the built CLI: a clear "kestrel: E_CODE: message", a non-zero exit, no stack
// trace, and no output file left behind (or lost work) when the command fails.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runKestrel, type CliRun } from './helpers/cli.js';

const bin = fileURLToPath(new URL('../packages/cli/bin/kestrel.js', import.meta.url));
const fx = (p: string): string => fileURLToPath(new URL(`./fixtures/${p}`, import.meta.url));
const vlm = fx('vlm/A');
const dir = mkdtempSync(join(tmpdir(), 'kestrel-cli-bad-'));

const kestrel = (...args: string[]): Promise<CliRun> => runKestrel(args, { timeoutMs: 60_000 });

function expectFailure(r: { code: number; err: string }, code: string): void {
  expect(r.code).toBe(1);
  expect(r.err).toMatch(new RegExp(`(^|\\n)kestrel: ${code}: `));
  expect(r.err).not.toMatch(/\n\s+at /);
}

describe('caption --out', () => {
  it('creates a missing parent folder instead of failing after all images are captioned', async () => {
    const out = join(dir, 'new-folder', 'captions.json');
    const r = await kestrel('caption', '--model', vlm, '--max-new-tokens', '2', '--out', out, join(vlm, 'img0.png'));
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(out, 'utf8')) as { image_id: string }[];
    expect(res.map((x) => x.image_id)).toEqual(['img0']);
  });

  it('a directory as --out is refused before the model loads', async () => {
    const d = join(dir, 'outdir');
    mkdirSync(d);
    const r = await kestrel('caption', '--model', vlm, '--out', d, join(vlm, 'img0.png'));
    expectFailure(r, 'E_OPTIONS');
    expect(r.err).toContain('is a directory');
    expect(readdirSync(d)).toEqual([]);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a corrupt second image: the error starts its own line and no results file is written', async () => {
    const bad = join(dir, 'bad.jpg');
    writeFileSync(bad, readFileSync(join(vlm, 'img0.png')).subarray(0, 60));
    const out = join(dir, 'partial.json');
    const r = await kestrel('caption', '--model', vlm, '--max-new-tokens', '2', '--out', out, join(vlm, 'img0.png'), bad);
    expectFailure(r, 'E_IMAGE_DECODE');
    expect(r.err).toMatch(/\nkestrel: E_IMAGE_DECODE: /);
    expect(existsSync(out)).toBe(false);
  });
});

describe('bench defects --files', () => {
  it('an empty file list is a data error naming the list, not a bare "no samples"', async () => {
    const list = join(dir, 'empty-list.txt');
    writeFileSync(list, '\n');
    const r = await kestrel('bench', 'defects', '--data', fx('qc/elpv'), '--files', list);
    expectFailure(r, 'E_DATA_FORMAT');
    expect(r.err).toContain('lists no images');
  });
});

describe('bench coco', () => {
  // One image and a GT whose annotation has a string bbox; the detector must not run at all.
  const data = join(dir, 'coco');
  mkdirSync(join(data, 'images'), { recursive: true });
  mkdirSync(join(data, 'annotations'));
  writeFileSync(join(data, 'images', 'a.png'), readFileSync(join(vlm, 'img0.png')));
  const image = { id: 1, file_name: 'a.png', width: 8, height: 8 };
  const categories = [{ id: 1, name: 'person' }];

  it('malformed GT annotations fail before the detector runs and leave no results file', async () => {
    writeFileSync(join(data, 'annotations', 'instances_val.json'), JSON.stringify({ images: [image], annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: 'x' }], categories }));
    const results = join(dir, 'coco-results.json');
    // "nope" as the model: reaching the model loader would fail with E_MODEL_NOT_FOUND instead.
    const r = await kestrel('bench', 'coco', '--model', 'nope', '--data', data, '--results', results);
    expectFailure(r, 'E_COCO_FORMAT');
    expect(r.err).toContain('annotations[0].bbox');
    expect(existsSync(results)).toBe(false);
  });

  it('a directory as --results is refused before the detector runs', async () => {
    writeFileSync(join(data, 'annotations', 'instances_val.json'), JSON.stringify({ images: [image], annotations: [], categories }));
    const d = join(dir, 'results-dir');
    mkdirSync(d);
    const r = await kestrel('bench', 'coco', '--model', 'nope', '--data', data, '--results', d);
    expectFailure(r, 'E_OPTIONS');
    expect(r.err).toContain('is a directory');
    expect(readdirSync(d)).toEqual([]);
  });
});

describe('serve / watch --rules', () => {
  it('a folder as --rules is E_OPTIONS, not an internal error', async () => {
    const d = join(dir, 'rules-dir');
    mkdirSync(d);
    for (const args of [
      ['serve', '--pipeline', 'detect', '--model', 'centernet', '--rules', d, '--api-key', 'k'.repeat(16), '--db', join(dir, 's.db')],
      ['watch', d, '--pipeline', 'detect', '--model', 'centernet', '--rules', d, '--once', '--db', join(dir, 'w.db')],
    ]) {
      const r = await kestrel(...args);
      expectFailure(r, 'E_OPTIONS');
      expect(r.err).toContain('cannot read the rules file');
    }
  });

  it('a missing rules file is named as such', async () => {
    const r = await kestrel('serve', '--pipeline', 'detect', '--model', 'centernet', '--rules', join(dir, 'nope.json'), '--api-key', 'k'.repeat(16), '--db', join(dir, 's.db'));
    expectFailure(r, 'E_OPTIONS');
    expect(r.err).toContain('nope.json is not a file and not inline JSON');
  });
});

describe('watch / serve --archive-ng', () => {
  // cell0001 of the ELPV fixture is defective (probability 1), so the shipped model calls it NG.
  const ng = fx('qc/elpv/images/cell0001.png');
  const notADir = join(dir, 'archive-is-a-file');
  writeFileSync(notADir, 'x');

  it('a file as --archive-ng is refused at start, and the image stays where it was', async () => {
    const w = join(dir, 'watched-1');
    mkdirSync(w);
    writeFileSync(join(w, 'part.png'), readFileSync(ng));
    const r = await kestrel('watch', w, '--model', 'defects-elpv', '--once', '--stable-ms', '50', '--interval', '20', '--archive-ng', notADir, '--db', join(dir, 'w1.db'));
    expectFailure(r, 'E_OPTIONS');
    expect(r.err).toContain('is not a folder');
    expect(readdirSync(w)).toEqual(['part.png']);
    const s = await kestrel('serve', '--model', 'defects-elpv', '--api-key', 'k'.repeat(16), '--archive-ng', notADir, '--db', join(dir, 's2.db'), '--port', '0');
    expectFailure(s, 'E_OPTIONS');
  });

  it('an archive folder that cannot be created is E_IO, not an internal error, and the image is not moved', async () => {
    const w = join(dir, 'watched-2');
    mkdirSync(w);
    writeFileSync(join(w, 'part.png'), readFileSync(ng));
    const r = await kestrel('watch', w, '--model', 'defects-elpv', '--once', '--stable-ms', '50', '--interval', '20', '--archive-ng', join(notADir, 'sub'), '--db', join(dir, 'w2.db'));
    expectFailure(r, 'E_IO');
    expect(readdirSync(w)).toEqual(['part.png']);
  });
});

describe('an output path under a file is E_IO, not an internal error', () => {
  const file = join(dir, 'plain-file');
  writeFileSync(file, 'x');
  const img = fx('qc/pneumoniamnist/images/val_0000.png');

  it('detect --out', async () => {
    const r = await kestrel('detect', img, '--model', 'centernet', '--out', join(file, 'o.png'));
    expectFailure(r, 'E_IO');
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('train xray --out', async () => {
    const data = join(dir, 'xray-data');
    mkdirSync(data);
    const names = ['train_0000.png', 'train_0001.png', 'train_0002.png', 'train_0003.png', 'train_0004.png', 'train_0005.png'];
    for (const n of names) writeFileSync(join(data, n), readFileSync(fx(`qc/pneumoniamnist/images/${n}`)));
    writeFileSync(join(data, 'labels.csv'), `file,split,label\n${names.map((n, i) => `${n},train,${i % 2}`).join('\n')}\n`);
    const r = await kestrel('train', 'xray', '--data', data, '--out', join(file, 'model'), '--size', '32');
    expectFailure(r, 'E_IO');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('caption --out and bench coco --results: refused before the model runs', async () => {
    const c = await kestrel('caption', '--model', vlm, '--out', join(file, 'c.json'), join(vlm, 'img0.png'));
    expectFailure(c, 'E_IO');
    expect(c.err).not.toContain('captioned');
    const data = join(dir, 'coco-ok');
    mkdirSync(join(data, 'images'), { recursive: true });
    mkdirSync(join(data, 'annotations'));
    writeFileSync(join(data, 'images', 'a.png'), readFileSync(img));
    writeFileSync(join(data, 'annotations', 'instances_val.json'), JSON.stringify({ images: [{ id: 1, file_name: 'a.png', width: 28, height: 28 }], annotations: [], categories: [{ id: 1, name: 'person' }] }));
    // model "nope": reaching the model loader would give E_MODEL_NOT_FOUND instead
    const b = await kestrel('bench', 'coco', '--model', 'nope', '--data', data, '--results', join(file, 'r.json'));
    expectFailure(b, 'E_IO');
  });

  it('quantize --out: refused before any tensor is quantized', async () => {
    const r = await kestrel('quantize', '--model', fx('lm/A'), '--out', join(file, 'q8'));
    expectFailure(r, 'E_IO');
    expect(r.err).toContain('is a file');
    expect(r.err).not.toContain('tensors');
  });

  it('watch: DIR/ng is a file', async () => {
    const w = join(dir, 'watched-3');
    mkdirSync(w);
    writeFileSync(join(w, 'part.png'), readFileSync(fx('qc/elpv/images/cell0001.png')));
    writeFileSync(join(w, 'ng'), 'x');
    const r = await kestrel('watch', w, '--model', 'defects-elpv', '--once', '--stable-ms', '50', '--interval', '20', '--db', join(dir, 'w3.db'));
    expectFailure(r, 'E_IO');
    expect(readdirSync(w).sort()).toEqual(['ng', 'part.png']);
  });
});

describe('train --out is checked before the training', () => {
  it('a non-model folder as --out fails first (the corrupt image behind it is never reached)', async () => {
    const data = join(dir, 'xray-corrupt');
    mkdirSync(data);
    const names = ['a.png', 'b.png', 'c.png', 'd.png'];
    for (const n of names) writeFileSync(join(data, n), 'not an image');
    writeFileSync(join(data, 'labels.csv'), `file,split,label\n${names.map((n, i) => `${n},train,${i % 2}`).join('\n')}\n`);
    const out = join(dir, 'precious');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'x');
    const r = await kestrel('train', 'xray', '--data', data, '--out', out, '--size', '32');
    expectFailure(r, 'E_IO');
    expect(r.err).toContain('refusing to overwrite');
    expect(readdirSync(out)).toEqual(['keep.txt']);
  });
});

describe('models pull into a cache that cannot be written', () => {
  it('fails with E_IO naming the cache folder and the fix', async () => {
    const file = join(dir, 'home-is-a-file');
    writeFileSync(file, 'x');
    const r = await new Promise<{ code: number; err: string }>((resolve) => {
      execFile(process.execPath, [bin, 'models', 'pull', 'centernet'], { timeout: 60_000, env: { ...process.env, KESTREL_HOME: join(file, 'home') } }, (e, _out, err) => {
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, err });
      });
    });
    expectFailure(r, 'E_IO');
    expect(r.err).toContain('cannot write model into');
    expect(r.err).toContain('KESTREL_HOME');
  });
});

describe('serve on a port that is taken', () => {
  it('fails with E_IO and leaves no new inspection database behind', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const db = join(dir, 'never-served.db');
      const r = await kestrel('serve', '--port', String(port), '--host', '127.0.0.1', '--db', db, '--model', 'defects-elpv', '--api-key', 'k'.repeat(16));
      expectFailure(r, 'E_IO');
      expect(r.err).toContain('cannot listen');
      expect(readdirSync(dir).filter((f) => f.startsWith('never-served'))).toEqual([]);
      // an existing database is the user's: it stays
      const kept = join(dir, 'kept.db');
      writeFileSync(kept, '');
      const again = await kestrel('serve', '--port', String(port), '--host', '127.0.0.1', '--db', kept, '--model', 'defects-elpv', '--api-key', 'k'.repeat(16));
      expectFailure(again, 'E_IO');
      expect(existsSync(kept)).toBe(true);
    } finally {
      blocker.close();
    }
  }, 120_000);
});

describe('detect with several images, one of them corrupt', () => {
  it('stops with E_IMAGE_DECODE naming the image, and says which finished overlays it kept', async () => {
    const good = fx('qc/pneumoniamnist/images/val_0000.png');
    const bad = join(dir, 'corrupt.png');
    writeFileSync(bad, 'not an image');
    const out = join(dir, 'multi', 'o.png');
    mkdirSync(join(dir, 'multi'));
    const r = await kestrel('detect', good, bad, good, '--model', 'centernet', '--out', out);
    expectFailure(r, 'E_IMAGE_DECODE');
    expect(r.err).toContain('stopped at image 2 of 3');
    expect(r.err).toContain(join(dir, 'multi', 'o-0.png'));
    // the first overlay is a complete PNG; nothing was written for the corrupt image or after it
    expect(readFileSync(join(dir, 'multi', 'o-0.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(readdirSync(join(dir, 'multi'))).toEqual(['o-0.png']);
  }, 60_000);
});
