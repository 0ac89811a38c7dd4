import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { KestrelError } from '../errors.js';

/**
 * The compiled worker script `rel` next to the module `base` (its `import.meta.url`). Workers run
 * compiled JavaScript: when `base` is a TypeScript source under `src/` (tests run from sources), this
 * names the same file under `dist/`, which `npx tsc -b` writes.
 */
export function workerScript(base: string, rel: string): URL {
  const url = new URL(rel, base);
  let path = fileURLToPath(url);
  if (base.endsWith('.ts')) path = path.replace(/([\\/])src([\\/])(?!.*[\\/]src[\\/])/, '$1dist$2').replace(/\.ts$/, '.js');
  if (!existsSync(path)) throw new KestrelError('E_BACKEND_UNAVAILABLE', `the model worker script ${path} is missing; run \`npx tsc -b\` (or \`npm run build\`) first, or pass inProcess: true`);
  return pathToFileURL(path);
}
