import type { TransferListItem } from 'node:worker_threads';

function isSharp(x: unknown): x is { toBuffer(): Promise<Buffer>; clone(): unknown } {
  return typeof x === 'object' && x !== null && !(x instanceof Uint8Array) && typeof (x as { clone?: unknown }).clone === 'function' && typeof (x as { toBuffer?: unknown }).toBuffer === 'function';
}

/** True for a buffer that owns its whole ArrayBuffer (moving it detaches nothing else). */
function ownsBuffer(u: Uint8Array): boolean {
  return u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer;
}

/**
 * Make call arguments cloneable for a model worker: a sharp instance is encoded here (sharp works on
 * libuv's threads, not this one) and its fresh bytes are moved, not copied. The caller's own Buffers are
 * cloned (one copy) so they stay usable; `moveBuffers` moves them too (the server's request bodies,
 * which nothing reads afterwards).
 */
export async function forWorker(value: unknown, moveBuffers = false): Promise<{ value: unknown; transfer: TransferListItem[] }> {
  const transfer: TransferListItem[] = [];
  const seen = new Set<ArrayBufferLike>();
  const move = (u: Uint8Array): void => {
    if (ownsBuffer(u) && !seen.has(u.buffer)) { seen.add(u.buffer); transfer.push(u.buffer as ArrayBuffer); }
  };
  const walk = async (v: unknown): Promise<unknown> => {
    if (isSharp(v)) {
      const b = await v.toBuffer();
      // sharp's output may be a view into a larger pool: copy it to its own buffer so it can move
      const own = ownsBuffer(b) ? b : Buffer.from(b);
      move(own);
      return own;
    }
    if (v instanceof Uint8Array) {
      if (moveBuffers) move(v);
      return v;
    }
    if (Array.isArray(v)) return Promise.all(v.map(walk));
    if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = await walk(x);
      return out;
    }
    return v;
  };
  return { value: await walk(value), transfer };
}

/** A Uint8Array that crossed a worker boundary arrives as a plain Uint8Array; sharp and the loaders want Buffers. */
export function asBuffers(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(asBuffers);
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = asBuffers(x);
    return out;
  }
  return v;
}
