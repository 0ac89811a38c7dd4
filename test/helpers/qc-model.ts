import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');

/**
 * The real defects model the QC server tests use: the shipped `anomaly-magnetic-tile` (models/), or a
 * folder named by KESTREL_QC_TEST_MODEL. Returns a reason to skip when neither exists.
 */
export function qcTestModel(): { model: string; skip: false } | { model: undefined; skip: string } {
  const env = process.env.KESTREL_QC_TEST_MODEL;
  if (env) return existsSync(join(env, 'qc-model.json')) ? { model: resolve(env), skip: false } : { model: undefined, skip: `KESTREL_QC_TEST_MODEL=${env} has no qc-model.json` };
  const shipped = join(ROOT, 'models', 'anomaly-magnetic-tile');
  if (existsSync(join(shipped, 'qc-model.json'))) return { model: 'anomaly-magnetic-tile', skip: false };
  return { model: undefined, skip: 'models/anomaly-magnetic-tile is not in this checkout' };
}

/** True when the CLI has been built (the reliability tests run `kestrel serve` as a child process). */
export function cliBuilt(): boolean {
  return existsSync(join(ROOT, 'packages/serve/dist/server.js')) && existsSync(join(ROOT, 'packages/cli/dist/commands/serve.js'));
}
