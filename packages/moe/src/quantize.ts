import { mkdir, readFile, readdir, rename, rm, stat, copyFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { KestrelError, Tensor, openSafetensors, writeSafetensors } from '@kestrel/core';
import { quantizeQ8, type LinearWeight } from '@kestrel/native';
import { parseModelConfig } from './config.js';
import { Q8_SCALE_SUFFIX } from './weights.js';

/** Matrices that int8 mode stores as q8 (everything but norms, biases and the f32 router). */
const QUANTIZED = /(^|\.)((q|k|v|o|q_a|q_b|kv_b)_proj|kv_a_proj_with_mqa|gate_proj|up_proj|down_proj)\.weight$|(^|\.)(embed_tokens|lm_head)\.weight$/;

/** Result of {@link quantizeCheckpoint}. */
export interface QuantizeReport {
  out: string;
  tensors: number;
  quantized: number;
  inputBytes: number;
  outputBytes: number;
}

/**
 * Write a q8 (block-32, weight-only) copy of a DeepseekV2ForCausalLM checkpoint: each quantized
 * matrix `X.weight` becomes I8 `[n, ceil(k/32)*32]` plus F32 `X.weight_scale` `[n, ceil(k/32)]`; other
 * tensors are copied unchanged; config.json gains `quantization_config: {quant_method: 'kestrel_q8'}`.
 * Loading the result with dtype 'int8' needs no quantization work. The output directory is written
 * under a temporary name and renamed at the end, so a failure never leaves a half-written model.
 */
export async function quantizeCheckpoint(dir: string, out: string, options: { overwrite?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<QuantizeReport> {
  const src = resolve(dir);
  const dst = resolve(out);
  if (src === dst) throw new KestrelError('E_OPTIONS', 'the output directory must differ from the model directory');
  const cfgText = await readFile(join(src, 'config.json'), 'utf8').catch(() => {
    throw new KestrelError('E_MODEL_NOT_FOUND', `${src} has no config.json`);
  });
  let cfgJson: Record<string, unknown>;
  try { cfgJson = JSON.parse(cfgText) as Record<string, unknown>; } catch (e) {
    throw new KestrelError('E_CHECKPOINT_FORMAT', `${join(src, 'config.json')} is not valid JSON (${(e as Error).message})`);
  }
  parseModelConfig(cfgJson); // reject unsupported checkpoints before doing any work
  const exists = await stat(dst).catch(() => null);
  if (exists) {
    const entries = exists.isDirectory() ? await readdir(dst) : ['(a file)'];
    if (entries.length && !options.overwrite) throw new KestrelError('E_OPTIONS', `${dst} already exists and is not empty; choose another --out or pass --overwrite`);
  }
  // A path under a file would fail only at the final mkdir, after quantizing every tensor.
  let up = dirname(dst);
  while (!(await stat(up).catch(() => null)) && dirname(up) !== up) up = dirname(up);
  if ((await stat(up).catch(() => null))?.isDirectory() === false) throw new KestrelError('E_IO', `cannot write ${dst}: ${up} is a file`);
  const file = await openSafetensors(src);
  const tmp = `${dst}.tmp-${process.pid}-${Date.now()}`;
  let inputBytes = 0;
  let quantized = 0;
  try {
    const tensors = new Map<string, Tensor>();
    const names = file.names();
    let i = 0;
    for (const name of names) {
      const info = file.info(name);
      const t = await file.read(name);
      inputBytes += t.byteLength;
      if (QUANTIZED.test(name) && info.shape.length === 2 && info.dtype !== 'i8') {
        const [n, k] = info.shape as [number, number];
        let w: LinearWeight;
        if (t.dtype === 'bf16') w = { format: 'bf16', n, k, data: t.data as Uint16Array };
        else w = { format: 'f32', n, k, data: t.toF32().data };
        const q = quantizeQ8(w);
        const kp = q.data.length / n;
        tensors.set(name, new Tensor('i8', [n, kp], q.data));
        tensors.set(name + Q8_SCALE_SUFFIX, new Tensor('f32', [n, kp / 32], q.scales));
        quantized++;
      } else {
        tensors.set(name, t);
      }
      options.onProgress?.(++i, names.length);
    }
    await mkdir(tmp, { recursive: true });
    const meta = { ...file.metadata(), format: 'pt', quantization: 'kestrel_q8_block32' };
    await writeSafetensors(join(tmp, 'model.safetensors'), tensors, meta);
    const cfgOut = { ...cfgJson, quantization_config: { quant_method: 'kestrel_q8', block_size: 32 } };
    await writeFile(join(tmp, 'config.json'), JSON.stringify(cfgOut, null, 2) + '\n');
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json']) {
      if (await stat(join(src, f)).catch(() => null)) await copyFile(join(src, f), join(tmp, f));
    }
    if (exists) await rm(dst, { recursive: true, force: true });
    await rename(tmp, dst);
    let outputBytes = 0;
    for (const t of tensors.values()) outputBytes += t.byteLength;
    return { out: dst, tensors: names.length, quantized, inputBytes, outputBytes };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e instanceof KestrelError ? e : new KestrelError('E_IO', `quantize failed: ${(e as Error).message}`, { cause: e });
  } finally {
    await file.close();
  }
}
