/**
 * Writes safetensors files atomically (temporary file, then rename). The one writer streams tensors produced
 * piece by piece (a callback fills each chunk), so a checkpoint larger than memory is written with one
 * chunk-sized buffer; {@link writeSafetensors} is that writer over tensors already in memory.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { KestrelError } from './errors.js';
import { DTYPE_BYTES, shapeSize, type DType, type Tensor } from './tensor.js';
import { DTYPE_TO_ST } from './safetensors.js';

/** One tensor to stream: `fill(chunk, offset)` writes bytes [offset, offset + chunk.length) of its data. */
export interface StreamedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  fill(chunk: Uint8Array, offset: number): void;
}

/** Bytes of a streamed file: 8 + header + data. */
export function safetensorsHeader(tensors: readonly Pick<StreamedTensor, 'name' | 'dtype' | 'shape'>[], metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new KestrelError('E_OPTIONS', 'a tensor cannot be named __metadata__');
    const len = shapeSize(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: DTYPE_TO_ST[t.dtype], shape: t.shape, data_offsets: [off, off + len] };
    off += len;
  }
  let hjson = JSON.stringify(header);
  hjson += ' '.repeat((8 - ((8 + Buffer.byteLength(hjson)) % 8)) % 8);
  const h = Buffer.from(hjson, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h]);
}

/**
 * Stream `tensors` into `path` (atomically); `chunkBytes` bounds the memory used; `sync` flushes the file to
 * disk before the rename.
 */
export async function writeSafetensorsStreamed(path: string, tensors: readonly StreamedTensor[], metadata?: Record<string, string>, chunkBytes = 16 << 20, sync = false): Promise<void> {
  const head = safetensorsHeader(tensors, metadata);
  // Unique per call: two concurrent writes of one path must not share (and truncate) a temporary file.
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'w');
  } catch (e) {
    throw new KestrelError('E_IO', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  const buf = new Uint8Array(chunkBytes - (chunkBytes % 8));
  try {
    await fh.write(head);
    for (const t of tensors) {
      const len = shapeSize(t.shape) * DTYPE_BYTES[t.dtype];
      for (let off = 0; off < len; off += buf.length) {
        const chunk = buf.subarray(0, Math.min(buf.length, len - off));
        t.fill(chunk, off);
        await fh.write(chunk);
      }
    }
    if (sync) await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e instanceof KestrelError ? e : new KestrelError('E_IO', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Write tensors to a safetensors file atomically (temporary file + rename, flushed to disk first), so a crash
 * never leaves a half-written checkpoint behind. Tensors are stored in the order given.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const streamed = list.map(([name, t]): StreamedTensor => {
    const b = t.bytes();
    return { name, dtype: t.dtype, shape: t.shape, fill: (chunk, offset) => chunk.set(b.subarray(offset, offset + chunk.length)) };
  });
  // a small file gets a small buffer
  const total = list.reduce((a, [, t]) => a + t.byteLength, 0);
  await writeSafetensorsStreamed(path, streamed, metadata, Math.max(8, Math.min(16 << 20, total + 7)), true);
}
