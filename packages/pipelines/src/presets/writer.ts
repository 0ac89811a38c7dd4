/**
 * Writes a preset as a random-weight checkpoint in the published layout: BF16 tensors in shards of at most
 * SHARD_BYTES with `model.safetensors.index.json`, config.json, processor_config.json and a stand-in tokenizer.
 * Shards are streamed (one chunk buffer, never a whole tensor in memory); the folder is written under a temporary
 * name and renamed when complete, so an interrupted run leaves no checkpoint that looks whole.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createHash, randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { KestrelError, reportProgress, writeSafetensorsStreamed, type ProgressListener, type StreamedTensor } from '@kestrel/core';
import { kestrelHome } from '../models/paths.js';
import { PRESETS, PRESET_NAMES, type PresetName, type PresetSpec } from './configs.js';
import { vl2Tensors, type PresetTensor } from './tensors.js';
import { standInTokenizer } from './tokenizer.js';

/** Largest shard written (Hugging Face's default max_shard_size is 5 GB; 4 GB keeps tiny in two shards). */
export const SHARD_BYTES = 4e9;

/** Where a preset's checkpoint lives: `<KESTREL_HOME or ~/.cache/kestrel>/presets/<name>`. */
export function presetDir(name: PresetName, home = kestrelHome()): string {
  return join(home, 'presets', name);
}

/** Check the name (E_OPTIONS naming the presets otherwise). */
export function presetName(name: unknown): PresetName {
  if (typeof name === 'string' && (PRESET_NAMES as readonly string[]).includes(name)) return name as PresetName;
  throw new KestrelError('E_OPTIONS', `unknown preset ${JSON.stringify(name)}; choose one of ${PRESET_NAMES.join(', ')}`);
}

/** bf16 bit pattern of 2^e with a random sign and mantissa: |x| uniform in [2^e, 2^(e+1)), std = 1.53 * 2^e. */
function exponentFor(std: number): number {
  return Math.round(Math.log2(std / Math.sqrt(7 / 3)));
}

function filler(t: PresetTensor): StreamedTensor['fill'] {
  if (t.init === 'zero') return (c) => c.fill(0);
  if (t.init === 'one') return (c) => new Uint16Array(c.buffer, c.byteOffset, c.length >> 1).fill(0x3f80);
  const e = exponentFor(t.init) + 127;
  const fixed = ((e << 7) | (e << 23)) >>> 0;
  return (c) => {
    randomFillSync(c);
    // sign and 7 mantissa bits random, exponent fixed; two bf16 values per 32-bit word
    const w = new Uint32Array(c.buffer, c.byteOffset, c.length >> 2);
    for (let i = 0; i < w.length; i++) w[i] = (w[i]! & 0x807f807f) | fixed;
    if (c.length & 2) new Uint16Array(c.buffer, c.byteOffset + c.length - 2, 1)[0] = fixed & 0xffff;
  };
}

const bytesOf = (t: PresetTensor): number => t.shape.reduce((a, d) => a * d, 2);

const MARKER = '.kestrel-preset-complete';

/** Fingerprint of a tensor list (names, shapes): equal lists need no new weights. */
function tensorsKey(tensors: readonly PresetTensor[]): string {
  const h = createHash('sha256');
  for (const t of tensors) h.update(`${t.name}:${t.shape.join('x')};`);
  return h.digest('hex');
}

/**
 * True when `dir` holds a complete checkpoint of `spec` (the writer's marker is its last file and names the tensor
 * list). JSON files that differ only in keys that leave the tensors alone are rewritten in place.
 */
async function upToDate(dir: string, spec: Pick<PresetSpec, 'config' | 'processorConfig'>): Promise<boolean> {
  const marker = await readFile(join(dir, MARKER), 'utf8').catch(() => null);
  if (marker === null || !marker.includes(tensorsKey(vl2Tensors(spec.config)))) return false;
  for (const [file, value] of [['config.json', spec.config], ['processor_config.json', spec.processorConfig]] as const) {
    const text = JSON.stringify(value, null, 2) + '\n';
    if ((await readFile(join(dir, file), 'utf8').catch(() => null)) === text) continue;
    const tmp = join(dir, `${file}.tmp-${process.pid}`);
    await writeFile(tmp, text);
    await rename(tmp, join(dir, file));
  }
  return true;
}

/**
 * The preset's checkpoint folder, written first when missing (minutes and its size in disk: tiny 6.7 GB, small
 * 32 GB). Returns the folder and whether it was written now.
 */
export async function ensurePresetCheckpoint(name: PresetName, options: { home?: string; onProgress?: ProgressListener } = {}): Promise<{ dir: string; written: boolean }> {
  const dir = presetDir(name, options.home);
  return { dir, written: await ensureCheckpoint(dir, PRESETS[name], options.onProgress ? { onProgress: options.onProgress } : {}) };
}

/** {@link writePresetCheckpoint} unless `dir` already holds `spec`'s tensors; true when it wrote them. */
export async function ensureCheckpoint(dir: string, spec: Pick<PresetSpec, 'config' | 'processorConfig'>, options: { shardBytes?: number; onProgress?: ProgressListener } = {}): Promise<boolean> {
  if (await upToDate(dir, spec)) return false;
  await writePresetCheckpoint(dir, spec, options);
  return true;
}

/**
 * Write a random-weight checkpoint of `spec` into `dir` (replacing it): BF16 shards of at most `shardBytes`, the
 * index, both configs and the stand-in tokenizer.
 */
export async function writePresetCheckpoint(dir: string, spec: Pick<PresetSpec, 'config' | 'processorConfig'>, options: { shardBytes?: number; onProgress?: ProgressListener } = {}): Promise<void> {
  const limit = options.shardBytes ?? SHARD_BYTES;
  const tensors = vl2Tensors(spec.config);
  const shards: PresetTensor[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    if (size + bytesOf(t) > limit && shards[shards.length - 1]!.length) { shards.push([]); size = 0; }
    shards[shards.length - 1]!.push(t);
    size += bytesOf(t);
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const weightMap: Record<string, string> = {};
    const pad = (i: number): string => String(i).padStart(5, '0');
    let done = 0;
    for (let s = 0; s < shards.length; s++) {
      const file = `model-${pad(s + 1)}-of-${pad(shards.length)}.safetensors`;
      const list = shards[s]!.map((t): StreamedTensor => {
        weightMap[t.name] = file;
        const fill = filler(t);
        return { name: t.name, dtype: 'bf16', shape: t.shape, fill: (c, off) => { fill(c, off); if (off === 0) reportProgress({ task: 'write preset checkpoint', done: ++done, total: tensors.length, message: t.name }, options.onProgress); } };
      });
      await writeSafetensorsStreamed(join(tmp, file), list, { format: 'pt' });
    }
    const total = tensors.reduce((a, t) => a + bytesOf(t), 0);
    await writeFile(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
    await writeFile(join(tmp, 'config.json'), JSON.stringify(spec.config, null, 2) + '\n');
    await writeFile(join(tmp, 'processor_config.json'), JSON.stringify(spec.processorConfig, null, 2) + '\n');
    const vocab = (spec.config.language_config as { vocab_size: number }).vocab_size;
    const tok = standInTokenizer(vocab);
    await writeFile(join(tmp, 'tokenizer.json'), JSON.stringify(tok.tokenizer));
    await writeFile(join(tmp, 'tokenizer_config.json'), JSON.stringify(tok.config, null, 2) + '\n');
    await writeFile(join(tmp, MARKER), `random weights, ${total} bytes, tensors ${tensorsKey(tensors)}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e instanceof KestrelError ? e : new KestrelError('E_IO', `cannot write a preset checkpoint into ${dir}: ${(e as Error).message}`, { cause: e });
  }
}
