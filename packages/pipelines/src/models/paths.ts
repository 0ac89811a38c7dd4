/** Where models live on disk: the cache root ($KESTREL_HOME), a model's cache folder, the shipped models folder. */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Kestrel's cache root: `$KESTREL_HOME`, else `~/.cache/kestrel`. */
export function kestrelHome(): string {
  const env = process.env.KESTREL_HOME;
  return env && env.trim() ? resolve(env) : join(homedir(), '.cache', 'kestrel');
}

/** Where pulled models live: `<home>/models/<name>/`. */
export function modelCacheDir(name: string, home = kestrelHome()): string {
  return join(home, 'models', name);
}

/**
 * The folder of the QC models Kestrel ships (`models/` of the Kestrel repository), or undefined. Order:
 * `$KESTREL_MODELS_DIR`; else, when this package runs from a Kestrel checkout (the folder two levels above the
 * package root has the workspace root's package.json listing `packages/pipelines`), that checkout's `models/`.
 * An installed package has no such root above it, so nothing outside the package is ever searched.
 */
export function repoModelsDir(): string | undefined {
  const env = process.env.KESTREL_MODELS_DIR;
  if (env && env.trim()) return resolve(env);
  // dist/models/paths.js and src/models/paths.ts both sit two levels below the package root
  return checkoutModelsDir(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'));
}

/** `<root>/models` when `pkgRoot` is `<root>/packages/pipelines` of a Kestrel checkout, else undefined. */
export function checkoutModelsDir(pkgRoot: string): string | undefined {
  const root = resolve(pkgRoot, '..', '..');
  if (resolve(root, 'packages', 'pipelines') !== resolve(pkgRoot)) return undefined;
  try {
    const pj = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name?: unknown; workspaces?: unknown };
    const isKestrelRoot = pj.name === 'kestrel' && Array.isArray(pj.workspaces) && pj.workspaces.includes('packages/pipelines');
    const dir = join(root, 'models');
    return isKestrelRoot && existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}
