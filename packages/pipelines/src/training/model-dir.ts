import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KestrelError, Tensor, readAllSafetensors, writeSafetensors } from '@kestrel/core';
import { findNamedModelDir, modelSearchRoots } from '../models/index.js';

/** Name of the JSON description inside a Kestrel QC model folder. */
export const QC_MODEL_FILE = 'qc-model.json';
/** Name of the weights file inside a Kestrel QC model folder. */
export const QC_WEIGHTS_FILE = 'weights.safetensors';

/** A QC model folder read into memory. */
export interface QcModelFiles<M> {
  dir: string;
  meta: M;
  tensors: Map<string, Tensor>;
}

/**
 * Find a QC model given as a folder path or a name (`xray-pneumonia`, `defects-elpv`, `anomaly-magnetic-tile`).
 * A name is looked up as every model name is (models/resolve.ts: the shipped models folder, then
 * `$KESTREL_HOME/models/<name>`), taking the first folder with a qc-model.json.
 */
export function resolveQcModelDir(nameOrDir: string): string {
  const isQc = (dir: string): boolean => existsSync(join(dir, QC_MODEL_FILE));
  if (existsSync(nameOrDir) && statSync(nameOrDir).isDirectory() && isQc(nameOrDir)) return resolve(nameOrDir);
  const found = findNamedModelDir(nameOrDir, isQc);
  if (found) return found.dir;
  if (existsSync(nameOrDir)) {
    throw new KestrelError('E_MODEL_NOT_FOUND', `${resolve(nameOrDir)} is not a Kestrel QC model folder (no ${QC_MODEL_FILE}); train one with "kestrel train"`);
  }
  const shipped = modelSearchRoots().flatMap(({ root }) => { try { return readdirSync(root).filter((n) => isQc(join(root, n))); } catch { return []; } });
  throw new KestrelError('E_MODEL_NOT_FOUND', `no QC model "${nameOrDir}": not a folder, not in ${modelSearchRoots().map((r) => r.root).join(' or ')}${shipped.length ? `. Available: ${[...new Set(shipped)].join(', ')}` : ''}`);
}

/** Read a QC model folder; `check` validates the JSON (throw E_CHECKPOINT_FORMAT on mismatch). */
export async function readQcModel<M>(nameOrDir: string, check: (meta: unknown, dir: string) => M): Promise<QcModelFiles<M>> {
  const dir = resolveQcModelDir(nameOrDir);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, QC_MODEL_FILE), 'utf8'));
  } catch (e) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `cannot read ${join(dir, QC_MODEL_FILE)}: ${(e as Error).message}`, { cause: e });
  }
  const meta = check(raw, dir);
  const wpath = join(dir, QC_WEIGHTS_FILE);
  if (!existsSync(wpath)) throw new KestrelError('E_CHECKPOINT_FORMAT', `model folder ${dir} has no ${QC_WEIGHTS_FILE}`);
  const tensors = await readAllSafetensors(wpath);
  return { dir, meta, tensors };
}

/**
 * Throw E_IO when `outDir` cannot take a QC model (a file, a folder that is not a QC model, or a path
 * under a file). The trainers call it first, so a bad --out fails before the training, not after.
 */
export function checkQcModelOut(outDir: string): void {
  const out = resolve(outDir);
  if (existsSync(out) && !statSync(out).isDirectory()) throw new KestrelError('E_IO', `output ${out} exists and is not a folder`);
  if (existsSync(out) && !existsSync(join(out, QC_MODEL_FILE)) && readdirSync(out).length > 0) {
    throw new KestrelError('E_IO', `output folder ${out} exists and is not a Kestrel QC model folder; refusing to overwrite it`);
  }
  // The nearest existing ancestor must be a folder, or the final mkdir fails after all the work.
  let p = dirname(out);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  if (existsSync(p) && !statSync(p).isDirectory()) throw new KestrelError('E_IO', `cannot write model to ${out}: ${p} is a file`);
}

/**
 * Write a QC model folder atomically: everything goes to a temporary sibling folder that is renamed
 * into place at the end, so an interrupted run never leaves a half-written model. Extra text files
 * (a model card) may be added.
 */
export async function writeQcModel(outDir: string, meta: object, tensors: Record<string, Tensor>, extra: Record<string, string> = {}): Promise<string> {
  const out = resolve(outDir);
  checkQcModelOut(out);
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    // Inside the try: a parent that is a file (EEXIST/ENOTDIR) must be E_IO, not an internal error.
    await mkdir(dirname(out), { recursive: true });
    await mkdir(tmp);
    await writeSafetensors(join(tmp, QC_WEIGHTS_FILE), tensors);
    await writeFile(join(tmp, QC_MODEL_FILE), JSON.stringify(meta, null, 2) + '\n');
    for (const [name, text] of Object.entries(extra)) await writeFile(join(tmp, name), text);
    await rm(out, { recursive: true, force: true });
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined); // the tmp may be unreachable (ENOTDIR)
    if (e instanceof KestrelError) throw e;
    throw new KestrelError('E_IO', `cannot write model to ${out}: ${(e as Error).message}`, { cause: e });
  }
  return out;
}

/** A float32 tensor from a typed array (helper for heads and memory banks). */
export function f32(data: Float32Array, shape: number[]): Tensor {
  return new Tensor('f32', shape, data) as Tensor;
}

/** The pipeline task (`xray` or `defects`) of a QC model folder or shipped name. */
export async function qcModelTask(nameOrDir: string): Promise<'xray' | 'defects'> {
  const dir = resolveQcModelDir(nameOrDir);
  let raw: { task?: unknown };
  try {
    raw = JSON.parse(await readFile(join(dir, QC_MODEL_FILE), 'utf8')) as { task?: unknown };
  } catch (e) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `cannot read ${join(dir, QC_MODEL_FILE)}: ${(e as Error).message}`, { cause: e });
  }
  if (raw.task !== 'xray' && raw.task !== 'defects') throw new KestrelError('E_CHECKPOINT_FORMAT', `${dir}/${QC_MODEL_FILE} names no known task (got ${JSON.stringify(raw.task)})`);
  return raw.task;
}
