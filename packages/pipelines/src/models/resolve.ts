/** Resolving a model name or path to a folder and the file a runtime opens: one search order for every model kind. */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { KestrelError } from '@kestrel/core';
import { CATALOG, type ModelEntry, type ModelFormat } from './catalog.js';
import { kestrelHome, modelCacheDir, repoModelsDir } from './paths.js';
import { installedOk } from './manifest.js';

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
  const found = findNamedModelDir(nameOrPath, (dir) => findMainFile(dir) !== undefined, home);
  if (found) {
    const file = findMainFile(found.dir)!;
    return { name: nameOrPath, dir: found.dir, file, format: formatOf(file), source: found.source };
  }
  throw new KestrelError('E_MODEL_NOT_FOUND', `unknown model "${nameOrPath}": not a file or directory, not a built-in name (${[...CATALOG.keys()].join(', ')}), not in ${searchedRoots(home)}`);
}

/** The folders a bare model name is looked up in, in order: the shipped models, then the cache. */
export function modelSearchRoots(home = kestrelHome()): Array<{ root: string; source: 'repo' | 'cache' }> {
  const shipped = repoModelsDir();
  return [...(shipped ? [{ root: shipped, source: 'repo' as const }] : []), { root: join(home, 'models'), source: 'cache' as const }];
}

/** The search roots as text, for "not found" messages. */
export function searchedRoots(home = kestrelHome()): string {
  return modelSearchRoots(home).map((r) => r.root).join(' or ');
}

/** The first `<root>/<name>` of {@link modelSearchRoots} that `accept` takes (a runtime file, a qc-model.json, ...). */
export function findNamedModelDir(name: string, accept: (dir: string) => boolean, home = kestrelHome()): { dir: string; source: 'repo' | 'cache' } | undefined {
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(name)) return undefined;
  for (const { root, source } of modelSearchRoots(home)) {
    const dir = join(root, name);
    if (existsSync(dir) && statSync(dir).isDirectory() && accept(dir)) return { dir, source };
  }
  return undefined;
}
